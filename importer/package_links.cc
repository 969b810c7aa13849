#include "importer/package_links.h"

#include "store/sys.h"

namespace unify {

namespace {

std::string parent_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

}  // namespace

Result<PackageLinks> PackageLinks::read(int root_fd, const std::string& root_shown,
                                        const std::vector<std::string>& packages) {
    PackageLinks out;
    for (const auto& name : packages) {
        auto files = read_package_files(root_fd, root_shown, name);
        if (!files) return std::unexpected(files.error());
        size_t k = out.packages_.size();
        for (const auto& f : files->files) {
            out.files_.try_emplace(f, k);
            if (f.ends_with(".py"))
                out.pycache_.try_emplace(join_path(parent_of(f), "__pycache__"), k);
        }
        out.packages_.push_back(std::move(*files));
    }
    return out;
}

std::optional<size_t> PackageLinks::owner(const std::string& path) const {
    if (auto it = files_.find(path); it != files_.end()) return it->second;
    if (auto it = pycache_.find(parent_of(path)); it != pycache_.end()) return it->second;
    return std::nullopt;
}

}  // namespace unify

// The folders are layers (docs/DESIGN.md, "Folders"): store < linker < importer < gc, repair,
// query < cli. A source may include headers of its own folder and of the layers below it,
// never of a layer above or beside it. The libraries are linked the same way, so most
// arrows back up also fail to link; this test names the offending line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>

namespace {

const std::map<std::string, int> kLayer = {
    {"store", 0},  {"linker", 1}, {"importer", 2}, {"gc", 3},
    {"repair", 3}, {"query", 3},  {"cli", 4},
};

TEST(Layers, NoIncludePointsUpOrSideways) {
    namespace fs = std::filesystem;
    const std::regex include(R"(^\s*#\s*include\s+"([a-z_]+)/[^"]+")");
    int files = 0;
    std::vector<std::string> bad;
    for (const auto& [folder, layer] : kLayer) {
        for (const auto& entry : fs::directory_iterator(fs::path(UNIFY_SOURCE_DIR) / folder)) {
            std::string name = entry.path().filename();
            bool source = name.ends_with(".cc") || name.ends_with(".h");
            if (!source || name.ends_with("_test.cc")) continue;
            ++files;
            std::ifstream in(entry.path());
            std::string line;
            for (int n = 1; std::getline(in, line); ++n) {
                std::smatch m;
                if (!std::regex_search(line, m, include)) continue;
                auto target = kLayer.find(m[1]);
                bool ok =
                    target != kLayer.end() && (target->first == folder || target->second < layer);
                if (!ok) bad.push_back(folder + "/" + name + ":" + std::to_string(n) + ": " + line);
            }
        }
    }
    EXPECT_GT(files, 50);  // the scan found the tree
    for (const auto& b : bad) ADD_FAILURE() << "include against the layers: " << b;
}

}  // namespace

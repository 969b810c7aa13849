#!/usr/bin/env bash
# Package-aware unification on real guests (outside CI): copies the four debootstrap guests
# of ../shared/corpus/make-guests.sh to a scratch directory, imports them, and checks with
# dpkg's own lists (var/lib/dpkg/status, var/lib/dpkg/info/*.conffiles) that no conffile of
# any guest ends up linked: each is a regular file with one link whose inode is no object of
# the pool. Then prints the saving from `unify status` against the ideal 375.6 MB (the
# figure in DESIGN.md: content, owner, mode and exact mtime in the id, default exclusions),
# and the blocks really freed, measured with du (each inode counted once) before and after.
# status counts a path that already was a hard link inside its guest as a link too, so its
# figure exceeds du's by those extra names.
#
# A second pass re-imports every guest with `--include /etc`, so the whole of /etc is open
# to unification except what rule 1 (package configuration files) keeps private, and checks
# the conffiles again.
#
#   usage: bench/package_rules.sh [UNIFY_BINARY]     (as root; needs CAP_LINUX_IMMUTABLE)
#   env:   CORPUS=/var/tmp/corpus (g1..g4, never modified)  SCRATCH_BASE=/var/tmp  KEEP=1
set -euo pipefail

unify=${1:-${UNIFY:-}}
if [[ -z "$unify" ]]; then
    for c in /tmp/build-pkgdb/unify "$(dirname "$0")/../build/unify"; do
        [[ -x "$c" ]] && { unify=$c; break; }
    done
fi
[[ -x "$unify" ]] || { echo "package_rules: no unify binary; pass its path" >&2; exit 2; }
corpus=${CORPUS:-/var/tmp/corpus}
for g in g1 g2 g3 g4; do
    [[ -d "$corpus/$g" ]] || { echo "package_rules: $corpus/$g missing (make-guests.sh)" >&2; exit 2; }
done

scratch=$(mktemp -d "${SCRATCH_BASE:-/var/tmp}/unify-bench-pkg.XXXXXX")
cleanup() {
    if [[ "${KEEP:-}" == 1 ]]; then echo "kept $scratch"; return; fi
    chattr -R -i "$scratch" 2>/dev/null || true
    rm -rf --one-file-system "$scratch"
}
trap cleanup EXIT

t0=$SECONDS
for g in g1 g2 g3 g4; do cp -a "$corpus/$g" "$scratch/$g"; done
echo "copied the corpus to $scratch in $((SECONDS - t0)) s"
pool=$scratch/pool
"$unify" --pool "$pool" init >/dev/null
# Apparent bytes of the guests and the objects, each inode once (the index is reported apart).
du_total() { du -sb --total "$scratch"/g1 "$scratch"/g2 "$scratch"/g3 "$scratch"/g4 \
    "$pool/objects" | awk 'END {print $1}'; }
before=$(du_total)

# Every conffile dpkg knows of in guest $1, one guest path a line.
conffiles() {
    local root=$1
    {
        awk '/^Conffiles:/ {c=1; next} /^[^ ]/ {c=0} c && /^ \// {print $1}' "$root/var/lib/dpkg/status"
        cat "$root"/var/lib/dpkg/info/*.conffiles 2>/dev/null | sed 's/^remove-on-upgrade //'
    } | sort -u
}

# Fails if any conffile of any guest is linked: more than one link, or a pool object's inode.
check_conffiles() {
    local when=$1 bad=0 total=0
    find "$pool/objects" -type f -printf '%i\n' | sort -u >"$scratch/object-inodes"
    for g in g1 g2 g3 g4; do
        while IFS= read -r path; do
            local f="$scratch/$g$path"
            [[ -f "$f" && ! -L "$f" ]] || continue  # removed by the admin, or not a file
            total=$((total + 1))
            read -r ino links < <(stat -c '%i %h' "$f")
            if [[ "$links" != 1 ]] || grep -qx "$ino" "$scratch/object-inodes"; then
                echo "LINKED CONFFILE ($when): $g:$path (inode $ino, $links links)" >&2
                bad=$((bad + 1))
            fi
        done < <(conffiles "$scratch/$g")
    done
    echo "$when: $total conffiles checked in 4 guests, $bad linked"
    [[ $bad == 0 ]]
}

saved_bytes() {  # the pool's "bytes saved" in bytes
    "$unify" --pool "$pool" status | awk '/^  bytes saved/ {gsub(/[(),]/, "", $0); print $(NF-1); exit}'
}

echo
echo "== pass 1: default rules"
t0=$SECONDS
for g in g1 g2 g3 g4; do
    "$unify" --pool "$pool" -q import "$g" "$scratch/$g"
done
echo "imported 4 guests in $((SECONDS - t0)) s"
"$unify" --pool "$pool" import g3 "$scratch/g3" --dry-run | sed -n '/package database/,$p'
check_conffiles "pass 1"
saved=$(saved_bytes)
ideal=375600000
after=$(du_total)
awk -v s="$saved" -v i="$ideal" -v b="$before" -v a="$after" 'BEGIN {
    printf "bytes saved (unify status): %.1f MB (%d bytes)\n", s/1e6, s
    printf "bytes freed (du of guests + objects, before - after): %.1f MB (%d bytes); ideal 375.6 MB: %.1f%%\n",
        (b-a)/1e6, b-a, 100*(b-a)/i }'
echo "the index (not counted above): $(du -sh "$pool/index" | cut -f1)"
"$unify" --pool "$pool" import g3 "$scratch/g3" --explain /etc/nginx/nginx.conf
"$unify" --pool "$pool" import g3 "$scratch/g3" --explain /usr/sbin/nginx

echo
echo "== pass 2: --include /etc (rule 1 alone keeps the conffiles private)"
for g in g1 g2 g3 g4; do
    "$unify" --pool "$pool" -q import "$g" "$scratch/$g" --include /etc
done
"$unify" --pool "$pool" import g3 "$scratch/g3" --dry-run | sed -n '/package database/,$p'
check_conffiles "pass 2"
saved2=$(saved_bytes)
awk -v s="$saved2" 'BEGIN { printf "bytes saved with /etc included: %.1f MB (%d bytes)\n", s/1e6, s }'
"$unify" --pool "$pool" import g3 "$scratch/g3" --explain /etc/nginx/nginx.conf
echo "package_rules: ok"

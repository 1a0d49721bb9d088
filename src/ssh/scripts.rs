//! The POSIX sh scripts hoist runs on a remote host. Each is a constant:
//! every value reaches it as a positional parameter (`sh -c SCRIPT hoist
//! ROOT ARG...`, all words quoted by [`super::quote`]), never pasted into
//! the script text. `$1` is the server root; the prelude shifts it into
//! `$root`. They need only POSIX sh and utilities, GNU coreutils' `sync`
//! with file arguments, `flock` when present, and GNU tar.
//!
//! Exit statuses hoist reads (other non-zero statuses are failures with
//! stderr): [`NOT_FOUND`], [`EXISTS`], [`OUTSIDE`], [`BUSY`], [`SHORT`].

/// A path (or the parent a new file needs) does not exist.
pub const NOT_FOUND: i32 = 90;
/// A target that must be new exists.
pub const EXISTS: i32 = 91;
/// A path resolves outside the root (through a symbolic link), or a final
/// symbolic link was refused.
pub const OUTSIDE: i32 = 92;
/// The lock is held by another process.
pub const BUSY: i32 = 93;
/// Fewer bytes arrived than were sent: the stream was cut.
pub const SHORT: i32 = 95;

/// Defines `inside PATH`: exits [`OUTSIDE`] unless the nearest existing
/// ancestor of PATH's parent resolves (symbolic links followed) to the
/// root or below it. `inside "$p/."` checks `$p` itself. While the root
/// does not exist yet nothing below it can lead out, so all passes.
const PRELUDE: &str = r#"root=$1; shift
inside() {
  [ "$1" = "$root" ] && return 0
  [ -d "$root" ] || return 0
  r=$(cd -P -- "$root" && pwd -P) || exit 1
  d=$(dirname -- "$1")
  while [ ! -e "$d" ] && [ ! -h "$d" ]; do d=$(dirname -- "$d"); done
  p=$(cd -P -- "$d" 2>/dev/null && pwd -P) || { echo "$d is not a directory" >&2; exit 92; }
  [ "$r" = / ] && return 0
  case "$p/" in "$r"/*) return 0 ;; esac
  echo "$1 resolves to $p, outside $r" >&2
  exit 92
}
"#;

/// The prelude followed by `body`.
pub fn with_prelude(body: &str) -> String {
    format!("{PRELUDE}{body}")
}

/// Probe: proves a POSIX sh runs, names a missing tool (those of the Host
/// seam's scripts among them), reports GNU tar and flock.
pub const PROBE: &str = r#"echo hoist-sh-ok
for t in cat cp mv rm mkdir sync dirname basename chmod wc head ln stat touch dd find; do
  command -v "$t" >/dev/null 2>&1 || echo "missing $t"
done
tar --version 2>/dev/null | head -n 1
command -v flock >/dev/null 2>&1 && echo has-flock
exit 0
"#;

/// `$1` file: its bytes on stdout. A final symbolic link is refused.
pub const READ: &str = r#"inside "$1"
if [ -h "$1" ]; then echo "$1 is a symbolic link" >&2; exit 92; fi
[ -e "$1" ] || exit 90
exec cat -- "$1"
"#;

/// `$1` file, `$2` octal mode, `$3` byte count: stdin into a temporary
/// sibling, checked for length, fsynced, renamed over `$1`, and the
/// directory fsynced.
pub const WRITE: &str = r#"inside "$1"
d=$(dirname -- "$1")
[ -d "$d" ] || exit 90
t="$d/.$(basename -- "$1").hoist-tmp.$$"
trap 'rm -f -- "$t"' EXIT
umask 077
cat >"$t" || exit 1
n=$(wc -c <"$t") || exit 1
if [ "$n" -ne "$3" ]; then echo "received $n of $3 bytes" >&2; exit 95; fi
chmod "$2" "$t" || exit 1
sync -- "$t" || exit 1
mv -f -- "$t" "$1" || exit 1
trap - EXIT
sync -- "$d"
"#;

/// `$1` → `$2`, refusing to replace an existing `$2`; both directories
/// fsynced.
pub const RENAME: &str = r#"inside "$1"; inside "$2"
[ -e "$1" ] || [ -h "$1" ] || exit 90
if [ -e "$2" ] || [ -h "$2" ]; then exit 91; fi
[ -d "$(dirname -- "$2")" ] || exit 90
mv -T -- "$1" "$2" || exit 1
sync -- "$(dirname -- "$1")" "$(dirname -- "$2")"
"#;

/// `$1` removed with everything below it (gone at once: renamed aside
/// first, then deleted). Nothing there is not an error.
pub const REMOVE_TREE: &str = r#"inside "$1"
[ -e "$1" ] || [ -h "$1" ] || exit 0
d=$(dirname -- "$1")
t="$d/.$(basename -- "$1").hoist-rm.$$"
mv -T -- "$1" "$t" || exit 1
sync -- "$d" || exit 1
rm -rf -- "$t"
"#;

/// `$1` directory copied (modes, times, links as links) to the new `$2`
/// through a temporary sibling, made durable, then renamed into place.
pub const COPY_TREE: &str = r#"inside "$1/."; inside "$2"
if [ -h "$1" ] || [ ! -d "$1" ]; then exit 90; fi
if [ -e "$2" ] || [ -h "$2" ]; then exit 91; fi
d=$(dirname -- "$2")
[ -d "$d" ] || exit 90
t="$d/.$(basename -- "$2").hoist-tmp.$$"
trap 'rm -rf -- "$t"' EXIT
cp -a -T -- "$1" "$t" || exit 1
sync -f -- "$t" || sync || exit 1
mv -T -- "$t" "$2" || exit 1
trap - EXIT
sync -- "$d"
"#;

/// Exit 0 when `$1` exists (a dangling link counts), 1 when not.
pub const EXISTS_SCRIPT: &str = r#"inside "$1"
[ -e "$1" ] || [ -h "$1" ]
"#;

/// `$1` directory: one `KIND NAME\0` per entry, KIND `d` directory, `f`
/// file, `l` symbolic link, `o` other.
pub const LIST_DIR: &str = r#"inside "$1/."
[ -d "$1" ] || exit 90
cd -- "$1" || exit 1
for f in .[!.]* ..?* *; do
  if [ -h "$f" ]; then k=l
  elif [ -d "$f" ]; then k=d
  elif [ -f "$f" ]; then k=f
  elif [ -e "$f" ]; then k=o
  else continue
  fi
  printf '%s %s\0' "$k" "$f"
done
"#;

/// `$1` and its missing parents created; checked again afterwards.
pub const MKDIR_P: &str = r#"inside "$1/."
mkdir -p -- "$1" || exit 1
inside "$1/."
"#;

/// Everything written on `$1`'s filesystem made durable (syncfs, or a
/// full sync where `sync -f` is missing).
pub const MAKE_DURABLE: &str = r#"inside "$1/."
sync -f -- "$1" 2>/dev/null || sync
"#;

/// What observing the server reads, as a tar on stdout (GNU format,
/// names relative to the root, no link followed: `find` does not descend
/// into one and tar stores it as a link): each platform directory, its
/// build record and `sites/`, each entry of `sites/`, each site's
/// `settings.yaml`, and the vhosts. A missing directory lists nothing.
pub const OBSERVE: &str = r#"cd -- "$root" 2>/dev/null || exit 90
{
  find platforms -mindepth 1 -maxdepth 1 -print0
  find platforms -mindepth 2 -maxdepth 2 \( -name .hoist-platform.yaml -o -name sites \) -print0
  find platforms -mindepth 3 -maxdepth 3 -path 'platforms/*/sites/*' -print0
  find platforms -mindepth 4 -maxdepth 4 -path 'platforms/*/sites/*/settings.yaml' -type f -print0
  find vhosts -mindepth 1 -maxdepth 1 -name '*.conf' -type f -print0
} 2>/dev/null | exec tar --create --file=- --null --no-recursion --files-from=- --numeric-owner
"#;

/// `$1` directory as a tar on stdout (GNU format, names sorted, numeric
/// owners), members relative to it.
pub const TAR_OUT: &str = r#"inside "$1/."
if [ -h "$1" ] || [ ! -d "$1" ]; then exit 90; fi
exec tar --create --file=- --directory="$1" --numeric-owner --sort=name .
"#;

/// stdin as a tar extracted into the new directory `$1` (a staging name
/// the controller renames into place once the whole stream went through),
/// made durable. `$2` `mine`: the files are the remote account's, whoever
/// owned them in the archive (a tree from the controller, whose owners
/// mean nothing on the host); else tar's default (kept, for root).
pub const TAR_IN: &str = r#"inside "$1"
if [ -e "$1" ] || [ -h "$1" ]; then exit 91; fi
[ -d "$(dirname -- "$1")" ] || exit 90
mkdir -m 700 -- "$1" || exit 1
if [ "$2" = mine ]; then
  tar --extract --file=- --directory="$1" --numeric-owner --preserve-permissions --no-same-owner
else
  tar --extract --file=- --directory="$1" --numeric-owner --preserve-permissions
fi
if [ $? -ne 0 ]; then
  rm -rf -- "$1"; exit 1
fi
sync -f -- "$1" 2>/dev/null || sync
"#;

/// `$1` lock file, `$2` seconds to wait (`0`: do not wait), `$3` holder
/// text. Prints `locked` once held, then holds it until stdin ends (the
/// controller lets go, dies, or its connection breaks). With `flock` the
/// kernel drops the lock with the process; without it a lock directory
/// `$1.d` is made and removed on exit.
pub const LOCK: &str = r#"inside "$1"
mkdir -p -- "$(dirname -- "$1")" || exit 1
lock=$1
holder() { cat -- "$lock" 2>/dev/null || cat -- "$lock.d/holder" 2>/dev/null; }
if command -v flock >/dev/null 2>&1; then
  exec 9>>"$1" || exit 1
  if [ "$2" -gt 0 ]; then flock -x -w "$2" 9; else flock -x -n 9; fi || { holder >&2; exit 93; }
  printf '%s\n' "$3" >"$1"
else
  waited=0
  until mkdir -- "$1.d" 2>/dev/null; do
    if [ "$waited" -ge "$2" ]; then holder >&2; exit 93; fi
    sleep 1; waited=$((waited + 1))
  done
  trap 'rm -rf -- "$1.d"' EXIT HUP INT TERM
  printf '%s\n' "$3" >"$1.d/holder"
fi
echo locked
cat >/dev/null
"#;

// The scripts of the Host seam ([`super::seam`]): paths are absolute,
// built on the controller from the root and a confined relative path.

/// `$1` file, `$2` octal mode, `$3` byte count, `$4` `1`: synced. stdin
/// into a temporary sibling (made only if missing, with `O_EXCL`), checked
/// for length, renamed over `$1` (a link there is replaced, not followed);
/// with `$4`, file and directory synced. A missing directory is made.
pub const HOST_WRITE: &str = r#"inside "$1"
d=$(dirname -- "$1")
if [ ! -d "$d" ]; then mkdir -p -- "$d" || exit 1; inside "$1"; fi
b=${1##*/}
t="$d/.$b.hoist-tmp.$$"
rm -f -- "$t"
trap 'rm -f -- "$t"' EXIT
umask 077
set -C
cat >"$t" || exit 1
n=$(wc -c <"$t") || exit 1
if [ "$n" -ne "$3" ]; then echo "received $n of $3 bytes" >&2; exit 95; fi
chmod -- "$2" "$t" || exit 1
if [ "$4" = 1 ]; then sync -- "$t" || exit 1; fi
mv -f -T -- "$t" "$1" || exit 1
trap - EXIT
if [ "$4" = 1 ]; then sync -- "$d"; fi
"#;

/// `$1` → `$2`, replacing a file `$2` as rename(2) does.
pub const RENAME_OVER: &str = r#"inside "$1"; inside "$2"
[ -e "$1" ] || [ -h "$1" ] || exit 90
[ -d "$(dirname -- "$2")" ] || exit 90
exec mv -f -T -- "$1" "$2"
"#;

/// `$1` file (or link) removed; nothing there is fine.
pub const REMOVE_FILE: &str = r#"inside "$1"
if [ -d "$1" ] && [ ! -h "$1" ]; then echo "$1 is a directory" >&2; exit 1; fi
exec rm -f -- "$1"
"#;

/// `$1` directory copied to the new `$2` (modes, times, links as links)
/// through a temporary sibling renamed into place, leaving out its top
/// entries named in `$3`...
pub const COPY_EXCEPT: &str = r#"from=$1; to=$2; shift 2
inside "$from/."; inside "$to"
if [ -h "$from" ] || [ ! -d "$from" ]; then exit 90; fi
if [ -e "$to" ] || [ -h "$to" ]; then exit 91; fi
d=$(dirname -- "$to")
[ -d "$d" ] || exit 90
t="$d/.${to##*/}.hoist-tmp.$$"
trap 'rm -rf -- "$t"' EXIT
mkdir -- "$t" || exit 1
for f in "$from"/.[!.]* "$from"/..?* "$from"/*; do
  [ -e "$f" ] || [ -h "$f" ] || continue
  n=${f##*/}
  skip=
  for x in "$@"; do [ "$n" = "$x" ] && skip=1; done
  [ -n "$skip" ] || cp -a -- "$f" "$t/" || exit 1
done
mv -T -- "$t" "$to" || exit 1
trap - EXIT
"#;

/// `$1`: one letter for what it is, its links not followed: `d`, `f`,
/// `l`, `o` (other), `n` (nothing there).
pub const KIND: &str = r#"inside "$1"
if [ -h "$1" ]; then echo l
elif [ -d "$1" ]; then echo d
elif [ -f "$1" ]; then echo f
elif [ -e "$1" ]; then echo o
else echo n
fi
"#;

/// `$1` directory and its missing parents made; `$2` `1`: private (0700,
/// also when it exists). A link in its place is refused.
pub const MKDIR: &str = r#"inside "$1/."
if [ -h "$1" ]; then echo "$1 is a symbolic link" >&2; exit 92; fi
if [ "$2" = 1 ]; then umask 077; fi
mkdir -p -- "$1" || exit 1
inside "$1/."
if [ "$2" = 1 ]; then chmod 700 -- "$1" || exit 1; fi
"#;

/// The filesystem holding `$1`: blocks free to users, block size, file
/// nodes in all, file nodes free.
pub const FREE_SPACE: &str = r#"inside "$1/."
[ -e "$1" ] || exit 90
exec stat -f -c '%a %S %c %d' -- "$1"
"#;

/// `$1` directory synced (its entries survive a crash).
pub const SYNC_DIR: &str = r#"inside "$1/."
if [ -h "$1" ] || [ ! -d "$1" ]; then exit 90; fi
exec sync -- "$1"
"#;

/// The new file `$1` (0600, `O_EXCL`: an existing one or a link there
/// refused) holding stdin, `$2` bytes (a short one is removed).
pub const CREATE_NEW: &str = r#"inside "$1"
if [ -e "$1" ] || [ -h "$1" ]; then exit 91; fi
[ -d "$(dirname -- "$1")" ] || exit 90
umask 077
set -C
cat >"$1" || exit 1
n=$(wc -c <"$1") || exit 1
if [ "$n" -ne "$2" ]; then rm -f -- "$1"; echo "received $n of $2 bytes" >&2; exit 95; fi
"#;

/// stdin (`$2` bytes) appended to the file `$1`; `$3` `1`: the file
/// synced afterwards. A link is refused.
pub const APPEND: &str = r#"inside "$1"
if [ -h "$1" ]; then echo "$1 is a symbolic link" >&2; exit 92; fi
[ -f "$1" ] || exit 90
if [ "$2" -gt 0 ]; then
  n0=$(wc -c <"$1") || exit 1
  cat >>"$1" || exit 1
  n1=$(wc -c <"$1") || exit 1
  if [ $((n1 - n0)) -ne "$2" ]; then echo "appended $((n1 - n0)) of $2 bytes" >&2; exit 95; fi
fi
if [ "$3" = 1 ]; then sync -- "$1" || exit 1; fi
"#;

/// `$2` made a second name (hard link) of `$1`; an existing `$2` refused.
pub const LINK: &str = r#"inside "$1"; inside "$2"
[ -e "$1" ] || [ -h "$1" ] || exit 90
if [ -e "$2" ] || [ -h "$2" ]; then exit 91; fi
exec ln -P -- "$1" "$2"
"#;

/// The size of `$1` (a link's own).
pub const LEN: &str = r#"inside "$1"
[ -e "$1" ] || [ -h "$1" ] || exit 90
exec stat -c %s -- "$1"
"#;

/// The tree `$1` (a link is no tree), each entry as eight NUL-ended
/// fields: type, octal mode, size, mtime, uid, gid, path relative to `$1`,
/// link target. `$2` `1`: only entries named `$3` (a `find -name` pattern,
/// escaped by the controller), and only such directories entered.
pub const WALK: &str = r#"inside "$1/."
[ -e "$1" ] || [ -h "$1" ] || exit 90
if [ -h "$1" ] || [ ! -d "$1" ]; then echo "$1: not a directory (a symlink is not followed)" >&2; exit 1; fi
cd -- "$1" || exit 1
f='%y\0%m\0%s\0%T@\0%U\0%G\0%P\0%l\0'
if [ "$2" = 1 ]; then
  exec find . \( -name . -o -name "$3" \) -printf "$f" -o -prune
fi
exec find . -printf "$f"
"#;

/// The regular file `$1` (a link refused, `O_NOFOLLOW` when opened):
/// `open SIZE` on a line, then its bytes.
pub const OPEN: &str = r#"inside "$1"
if [ -h "$1" ]; then echo "$1 is a symbolic link" >&2; exit 92; fi
[ -e "$1" ] || exit 90
if [ ! -f "$1" ]; then echo "$1 is not a regular file" >&2; exit 1; fi
n=$(stat -c %s -- "$1") || exit 1
printf 'open %s\n' "$n"
exec dd if="$1" iflag=nofollow bs=65536 status=none
"#;

/// The new file `$1` (0600, `O_EXCL`), written from frames on stdin:
/// `ready` once it is open; then `d LEN` lines each followed by LEN bytes
/// (GNU head reads no more than it is asked for), and a last `f TOTAL MODE
/// MTIME SYNC` (`-`: none) that checks the length, gives the mode and
/// time, syncs when SYNC is 1 and prints `finished`. Without it the file
/// is left as far as it was written.
pub const CREATE: &str = r#"inside "$1"
if [ -e "$1" ] || [ -h "$1" ]; then exit 91; fi
[ -d "$(dirname -- "$1")" ] || exit 90
umask 077
set -C
exec 3>"$1" || exit 1
echo ready
while read -r op a b c d; do
  case $op in
  d) head -c "$a" >&3 || exit 1 ;;
  f)
    exec 3>&-
    n=$(wc -c <"$1") || exit 1
    if [ "$n" -ne "$a" ]; then echo "received $n of $a bytes" >&2; exit 95; fi
    if [ "$b" != - ]; then chmod -- "$b" "$1" || exit 1; fi
    if [ "$c" != - ]; then touch -c -m -d "@$c" -- "$1" 2>/dev/null || :; fi
    if [ "$d" = 1 ]; then sync -- "$1" || exit 1; fi
    echo finished
    exit 0 ;;
  *) echo "unknown frame $op" >&2; exit 1 ;;
  esac
done
echo "the stream ended before the file was finished" >&2
exit 95
"#;

/// The new directory `$1` (0700; its parent must exist).
pub const MKDIR_NEW: &str = r#"inside "$1"
if [ -e "$1" ] || [ -h "$1" ]; then exit 91; fi
[ -d "$(dirname -- "$1")" ] || exit 90
exec mkdir -m 700 -- "$1"
"#;

/// `$1` made a symbolic link to `$2`; an existing `$1` refused.
pub const SYMLINK: &str = r#"inside "$1"
if [ -e "$1" ] || [ -h "$1" ]; then exit 91; fi
[ -d "$(dirname -- "$1")" ] || exit 90
exec ln -s -T -- "$2" "$1"
"#;

/// The directory `$1` (never a link) given octal mode `$2` and, unless
/// `$3` is `-`, modification time `$3` (a time the filesystem refuses is
/// left, as locally).
pub const SET_DIR_META: &str = r#"inside "$1"
if [ -h "$1" ]; then echo "$1 is a symbolic link" >&2; exit 92; fi
[ -d "$1" ] || exit 90
chmod -- "$2" "$1" || exit 1
if [ "$3" != - ]; then touch -c -m -d "@$3" -- "$1" 2>/dev/null || :; fi
"#;

/// Everything written under the root made durable: a `syncfs` of the
/// root's filesystem and of each of the top directories `$1`... that
/// exists (each may be a mount), or a full sync without `sync -f`.
pub const DURABLE: &str = r#"[ -d "$root" ] || exit 90
set -- "$root" "$@"
for d in "$@"; do
  [ "$d" = "$root" ] || d="$root/$d"
  if [ -d "$d" ] && [ ! -h "$d" ]; then
    sync -f -- "$d" 2>/dev/null || { sync; exit 0; }
  fi
done
"#;

/// The program `$2` with arguments `$3`... run with input on stdin, killed
/// with its process group after `$1` seconds (TERM, then KILL ten seconds
/// on) by coreutils' `timeout`. Its status is the last line of stderr,
/// `hoist-exit N`, and the script exits 0: ssh's own failures exit 255,
/// as a program may (php's fatal errors do).
pub const RUN_PROGRAM: &str = r#"s=$1; shift
timeout -k 10 "$s" "$@"
printf '\nhoist-exit %s\n' "$?" >&2
"#;

/// The new directory `$1` (0700; an existing one refused) with a tar
/// stream from stdin unpacked into it, under its own name, after a
/// `ready` line (a move's copy, which the task's journal names from the
/// start); the arguments after `$1` are GNU tar's
/// ([`crate::driver::tree::TAR_IN_ARGS`]).
pub const UNTAR_NEW: &str = r#"inside "$1"
if [ -e "$1" ] || [ -h "$1" ]; then exit 91; fi
[ -d "$(dirname -- "$1")" ] || exit 90
mkdir -m 700 -- "$1" || exit 1
d=$1; shift
cd -- "$d" || exit 1
echo ready
exec tar "$@"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// The scripts are valid sh: `sh -n` parses each without running it.
    #[test]
    fn scripts_parse() {
        for s in [
            PROBE,
            READ,
            WRITE,
            RENAME,
            REMOVE_TREE,
            COPY_TREE,
            EXISTS_SCRIPT,
            LIST_DIR,
            MKDIR_P,
            MAKE_DURABLE,
            TAR_OUT,
            TAR_IN,
            LOCK,
            HOST_WRITE,
            RENAME_OVER,
            REMOVE_FILE,
            COPY_EXCEPT,
            KIND,
            MKDIR,
            FREE_SPACE,
            SYNC_DIR,
            CREATE_NEW,
            APPEND,
            LINK,
            LEN,
            WALK,
            OPEN,
            CREATE,
            MKDIR_NEW,
            SYMLINK,
            SET_DIR_META,
            DURABLE,
        ] {
            let full = with_prelude(s);
            let out = std::process::Command::new("sh")
                .arg("-n")
                .arg("-c")
                .arg(&full)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{full}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

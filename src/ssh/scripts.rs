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

/// Probe: proves a POSIX sh runs, reports GNU tar and flock.
pub const PROBE: &str = r#"echo hoist-sh-ok
for t in cat cp mv rm mkdir sync dirname basename chmod; do
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

/// `$1` directory as a tar on stdout (GNU format, names sorted, numeric
/// owners), members relative to it.
pub const TAR_OUT: &str = r#"inside "$1/."
if [ -h "$1" ] || [ ! -d "$1" ]; then exit 90; fi
exec tar --create --file=- --directory="$1" --numeric-owner --sort=name .
"#;

/// stdin as a tar extracted into the new directory `$1` (a staging name
/// the controller renames into place once the whole stream went through),
/// made durable.
pub const TAR_IN: &str = r#"inside "$1"
if [ -e "$1" ] || [ -h "$1" ]; then exit 91; fi
[ -d "$(dirname -- "$1")" ] || exit 90
mkdir -m 700 -- "$1" || exit 1
if ! tar --extract --file=- --directory="$1" --numeric-owner --preserve-permissions; then
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

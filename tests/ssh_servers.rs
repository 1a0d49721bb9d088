//! `kind: ssh` servers declared in the inventory (issue 14 item 1): the
//! real binary builds platforms and installs, migrates and observes sites
//! on a server reached through a real OpenSSH server on loopback, with
//! their databases on a real MariaDB; a host key swapped behind hoist's
//! back stops everything on that server, with a clear message, and
//! changes nothing there. The "remote" host is this machine, so the tests
//! look at its files directly.

mod common;
mod services;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{snapshot, Fixture};
use services::{http_get, mysql_database_yaml, MariaDb, Nginx, PhpFpm, Sshd, EXAMPLE_HEALTH};

/// The example inventory with its 2.x platforms on ssh server `web2` (the
/// 1.x ones stay local) and every site's database on MariaDB.
struct World {
    f: Fixture,
    sshd: Sshd,
    db: MariaDb,
    /// web2's root (its path has a space).
    root: PathBuf,
}

impl World {
    fn start() -> Option<World> {
        let sshd = Sshd::start()?;
        let db = MariaDb::start_unsynced()?;
        let f = Fixture::example();
        let root = f.inv().parent().unwrap().join("web2 root");
        std::fs::create_dir(&root).unwrap();
        let w = World { f, sshd, db, root };
        w.f.write("hoist.yaml", &w.hoist_yaml());
        for p in ["shop-2-0", "shop-2-1"] {
            let rel = format!("platforms/{p}.yaml");
            let text = w.f.read(&rel);
            w.f.write(&rel, &format!("{text}server: web2\n"));
        }
        Some(w)
    }

    fn hoist_yaml(&self) -> String {
        format!(
            "servers:\n  local: {{ kind: local, root: .hoist-host }}\n  web2:\n    \
             kind: ssh\n    host: {host}\n    port: {port}\n    user: {user}\n    \
             root: {root}\n    known_hosts: {kh}\n    identity_file: {id}\n\
             databases:\n{db}\
             defaults: {{ server: local, database: maria }}\n\
             status: {{ commit: false }}\n",
            host = self.sshd.host,
            port = self.sshd.port,
            user = self.sshd.user,
            root = self.root.display(),
            kh = self.sshd.known_hosts.display(),
            id = self.sshd.identity_file.display(),
            db = mysql_database_yaml("maria", &self.db),
        )
    }

    fn site_dir(&self, platform: &str, domain: &str) -> PathBuf {
        self.root
            .join("platforms")
            .join(platform)
            .join("sites")
            .join(domain)
    }

    /// The database a site's settings on web2 name.
    fn db_name(&self, platform: &str, domain: &str) -> String {
        let text =
            std::fs::read_to_string(self.site_dir(platform, domain).join("settings.yaml")).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        v["database"]["name"].as_str().unwrap().to_string()
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn sites_are_installed_observed_and_migrated_on_a_server_reached_over_ssh() {
    let Some(w) = World::start() else { return };
    let f = &w.f;
    let out = f.apply();
    assert!(
        out.stdout.contains("Apply complete: 9 success"),
        "{}",
        out.all()
    );

    // Built and installed on web2, under its root, as on a local server.
    let rec =
        std::fs::read_to_string(w.root.join("platforms/shop-2-1/.hoist-platform.yaml")).unwrap();
    assert!(rec.contains("codebase:"), "{rec}");
    let dental = w.site_dir("shop-2-0", "dental.example.net");
    assert_eq!(mode(&dental.join("settings.yaml")), 0o600);
    assert!(w.root.join("vhosts/dental.example.net.conf").is_file());
    assert!(w.root.join("vhosts/eatery.example.com.conf").is_file());
    let tasks = std::fs::read_dir(w.root.join("tasks")).unwrap().count();
    assert!(
        tasks >= 4,
        "web2 keeps its own task journal: {tasks} entries"
    );
    // The local server holds only the 1.x platforms.
    let local = f.host().join("platforms");
    assert!(local.join("shop-1-1").is_dir());
    assert!(!local.join("shop-2-0").exists());

    // Observed over ssh: nothing left to do.
    let plan = f.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(plan.all().contains("nothing to do"), "{}", plan.all());
    // In one fetch of what observing reads, not file by file.
    let out = f
        .cmd(&["plan"])
        .env("RUST_LOG", "hoist=debug")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("observed through one fetch"), "{log}");
    assert!(!log.contains("one by one"), "{log}");
    // What is edited there by hand is seen from here.
    let vhost = w.root.join("vhosts/eatery.example.com.conf");
    let kept = std::fs::read(&vhost).unwrap();
    std::fs::write(&vhost, b"# edited by hand\n").unwrap();
    let plan = f.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(
        plan.stdout.contains("its vhost was edited by hand"),
        "{}",
        plan.stdout
    );
    std::fs::write(&vhost, kept).unwrap();

    // Rows put in by hand survive a migrate between web2's platforms, and
    // the update of the new platform runs on them.
    let old_db = w.db_name("shop-2-0", "dental.example.net");
    w.db.sql(&format!(
        "CREATE TABLE `{old_db}`.notes (id INT PRIMARY KEY, b BLOB);\
         INSERT INTO `{old_db}`.notes VALUES (1, UNHEX('00FF0D0A1A27225C'));"
    ));
    std::fs::create_dir_all(dental.join("files")).unwrap();
    std::fs::write(dental.join("files/a.bin"), [0u8, 255, 13, 10]).unwrap();
    f.set_site("dental", "platform", "shop-2-1");
    let out = f.apply();
    assert!(out.all().contains("migrate"), "{}", out.all());
    let moved = w.site_dir("shop-2-1", "dental.example.net");
    assert!(!dental.exists(), "the old copy is removed");
    assert_eq!(
        std::fs::read(moved.join("files/a.bin")).unwrap(),
        [0u8, 255, 13, 10]
    );
    let new_db = w.db_name("shop-2-1", "dental.example.net");
    assert_ne!(new_db, old_db);
    assert_eq!(
        w.db.sql(&format!("SELECT HEX(b) FROM `{new_db}`.notes")),
        "00FF0D0A1A27225C\n"
    );
    assert_eq!(
        w.db.sql(&format!(
            "SELECT schema_version FROM `{new_db}`.`system` WHERE name = 'core'"
        ))
        .trim(),
        "6",
        "core's update 6 of shop-2.1 ran on web2's copy"
    );
    f.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn a_host_key_swapped_behind_hoists_back_stops_everything_on_that_server() {
    let Some(w) = World::start() else { return };
    let f = &w.f;
    f.apply();
    let before = snapshot(&w.root);

    // The server now presents another key than known_hosts records.
    let other = w.sshd.keygen(&w.sshd.dir().join("other_key"));
    std::fs::write(&w.sshd.known_hosts, w.sshd.known_hosts_line(&other)).unwrap();
    f.set_site("dental", "platform", "shop-2-1");

    let plan = f.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(
        plan.stderr.contains("server web2 cannot be reached") && plan.stderr.contains("host key"),
        "{}",
        plan.stderr
    );
    assert!(plan.stdout.contains("suspended"), "{}", plan.stdout);

    let apply = f.run(&["apply", "--yes"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(
        apply.stderr.contains("cannot be reached"),
        "{}",
        apply.stderr
    );
    assert_eq!(snapshot(&w.root), before, "nothing changed on web2");
    // Nothing of web2 was taken for gone: no site was installed again on
    // the local server.
    assert!(!f.host().join("platforms/shop-2-1").exists());
}

#[test]
fn a_sqlite_site_on_an_ssh_server_is_refused_with_why() {
    let Some(w) = World::start() else { return };
    let f = &w.f;
    f.write(
        "hoist.yaml",
        &w.hoist_yaml()
            .replace("  maria:", "  default: { kind: sqlite }\n  maria:"),
    );
    f.set_site("eatery", "database", "default");
    let out = f.run(&["apply", "--yes"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.all()
            .contains("SQLite keeps its files on a local server"),
        "{}",
        out.all()
    );
    assert!(!w.site_dir("shop-2-1", "eatery.example.com").exists());
}

/// Bakery (local, shop-1-0) with a table of every byte value and a file
/// of them added: what a move must carry over byte for byte.
fn seed_bakery(w: &World) -> (PathBuf, String) {
    let dir =
        w.f.host()
            .join("platforms/shop-1-0/sites/bakery.example.com");
    let text = std::fs::read_to_string(dir.join("settings.yaml")).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let db = v["database"]["name"].as_str().unwrap().to_string();
    let bytes: String = (0..=255u8).map(|b| format!("{b:02X}")).collect();
    w.db.sql(&format!(
        "CREATE TABLE `{db}`.notes (id INT PRIMARY KEY, b LONGBLOB);\
         INSERT INTO `{db}`.notes VALUES (1, UNHEX('{bytes}')), (2, ''), (3, NULL);"
    ));
    std::fs::create_dir_all(dir.join("files/deep/er")).unwrap();
    std::fs::write(dir.join("files/deep/er/all.bin"), all_bytes()).unwrap();
    std::os::unix::fs::symlink("deep/er/all.bin", dir.join("files/link")).unwrap();
    (dir, db)
}

fn all_bytes() -> Vec<u8> {
    (0..4096u32).map(|i| (i * 131 % 256) as u8).collect()
}

/// The databases on MariaDB whose names start with `prefix`.
fn databases(w: &World, prefix: &str) -> Vec<String> {
    w.db.sql(&format!(
        "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '{prefix}%' ORDER BY 1"
    ))
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn a_site_moves_from_a_local_server_to_an_ssh_server_byte_for_byte() {
    let Some(w) = World::start() else { return };
    let f = &w.f;
    f.apply();
    let (old_dir, old_db) = seed_bakery(&w);
    // What a tar stream must carry besides bytes: a hard link, a name that
    // is not UTF-8, an empty file, modes and times, a read-only directory.
    use std::os::unix::ffi::OsStrExt;
    let files = old_dir.join("files");
    std::fs::hard_link(files.join("deep/er/all.bin"), files.join("hard")).unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9 \n.txt");
    std::fs::write(files.join(odd), b"odd").unwrap();
    std::fs::write(files.join("empty"), b"").unwrap();
    std::fs::set_permissions(files.join("empty"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let old_time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(files.join("empty"))
        .unwrap()
        .set_modified(old_time)
        .unwrap();
    std::fs::create_dir(files.join("ro")).unwrap();
    std::fs::write(files.join("ro/kept"), b"kept").unwrap();
    std::fs::set_permissions(files.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
    f.set_site("bakery", "platform", "shop-2-1");

    let plan = f.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(
        plan.stdout.contains(
            "bakery.example.com on shop-1-0 (server local) -> bakery.example.com on shop-2-1 (server web2)"
        ),
        "{}",
        plan.stdout
    );
    let out = f.apply();
    assert!(out.stdout.contains("1 success"), "{}", out.all());

    let new_dir = w.site_dir("shop-2-1", "bakery.example.com");
    assert!(
        !old_dir.exists(),
        "the old copy is removed from the local server"
    );
    assert!(!f.host().join("vhosts/bakery.example.com.conf").exists());
    assert!(w.root.join("vhosts/bakery.example.com.conf").is_file());
    assert_eq!(
        std::fs::read(new_dir.join("files/deep/er/all.bin")).unwrap(),
        all_bytes()
    );
    assert_eq!(
        std::fs::read_link(new_dir.join("files/link")).unwrap(),
        Path::new("deep/er/all.bin")
    );
    assert_eq!(mode(&new_dir.join("settings.yaml")), 0o600);
    {
        use std::os::unix::fs::MetadataExt;
        let moved = new_dir.join("files");
        let meta = |p: &str| std::fs::symlink_metadata(moved.join(p)).unwrap();
        assert_eq!(
            meta("hard").ino(),
            meta("deep/er/all.bin").ino(),
            "a hard link stays one"
        );
        assert_eq!(std::fs::read(moved.join(odd)).unwrap(), b"odd");
        assert_eq!(meta("empty").len(), 0);
        assert_eq!(meta("empty").mode() & 0o777, 0o640);
        assert_eq!(meta("empty").modified().unwrap(), old_time);
        assert_eq!(meta("ro").mode() & 0o777, 0o555);
        assert_eq!(std::fs::read(moved.join("ro/kept")).unwrap(), b"kept");
        // Writable again so the test's temp dir can go.
        std::fs::set_permissions(moved.join("ro"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let new_db = w.db_name("shop-2-1", "bakery.example.com");
    assert_eq!(
        databases(&w, "bakery"),
        vec![new_db.clone()],
        "the old database is dropped"
    );
    assert_ne!(new_db, old_db);
    let bytes: String = (0..=255u8).map(|b| format!("{b:02X}")).collect();
    assert_eq!(
        w.db.sql(&format!(
            "SELECT id, HEX(b) FROM `{new_db}`.notes ORDER BY id"
        )),
        format!("1\t{bytes}\n2\t\n3\tNULL\n")
    );
    // The task record stays on the server the site left, naming both.
    let rec = common::last_task(f);
    assert_eq!(rec["journal"]["to_server"], "web2", "{rec}");
    assert_eq!(rec["to"]["server"], "web2", "{rec}");
    f.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn a_failed_cross_server_move_is_undone_on_both_hosts() {
    let Some(w) = World::start() else { return };
    let f = &w.f;
    f.apply();
    let (old_dir, old_db) = seed_bakery(&w);
    let local_before = snapshot(&old_dir);
    let remote_before = snapshot(&w.root.join("platforms"));
    f.set_site("bakery", "platform", "shop-2-1");

    // The new copy is made, updated and checked on web2, then the switch
    // fails.
    let r = f.with_failpoint(&["apply", "--yes"], "switch:error");
    assert_ne!(r.status.code(), Some(0));
    let rec = common::last_task(f);
    assert_eq!(rec["result"], "failed", "{rec}");
    assert!(
        rec.to_string()
            .contains("rolled back: the new copy was removed"),
        "{rec}"
    );

    assert_eq!(
        snapshot(&old_dir),
        local_before,
        "the old site is as it was"
    );
    assert_eq!(
        snapshot(&w.root.join("platforms")),
        remote_before,
        "nothing of the copy is left on web2"
    );
    assert!(!w.root.join("vhosts/bakery.example.com.conf").exists());
    assert_eq!(
        databases(&w, "bakery"),
        vec![old_db.clone()],
        "the new database is dropped"
    );
    assert_eq!(
        w.db.sql(&format!(
            "SELECT value FROM `{old_db}`.variables WHERE name = 'maintenance_mode'"
        )),
        "0\n",
        "the old site is back online"
    );
    // The next apply carries the move out.
    f.apply();
    assert!(w.site_dir("shop-2-1", "bakery.example.com").is_dir());
    assert!(!old_dir.exists());
}

#[test]
fn a_kill_anywhere_in_a_cross_server_move_leaves_one_copy_and_loses_nothing() {
    // Before the copy, inside it, after the updates on web2, once web2
    // serves the copy (not yet committed), and after the commit.
    for point in [
        "deploy-inside:abort",
        "update:abort-after",
        "switch:abort-after",
        "remove-old:abort",
    ] {
        let Some(w) = World::start() else { return };
        let f = &w.f;
        f.apply();
        let (old_dir, _) = seed_bakery(&w);
        f.set_site("bakery", "platform", "shop-2-1");
        let r = f.with_failpoint(&["apply", "--yes"], point);
        assert_ne!(r.status.code(), Some(0), "{point}: the hoist was killed");
        // The next run recovers (the site back on the local server, or,
        // past the commit, finished on web2), then carries the move out.
        let out = f.apply();
        assert!(
            out.stderr.contains("recovered interrupted task"),
            "{point}: {}",
            out.all()
        );
        let remote = w.site_dir("shop-2-1", "bakery.example.com");
        assert!(
            !old_dir.exists() && remote.is_dir(),
            "{point}: one copy, on web2"
        );
        assert_eq!(
            std::fs::read(remote.join("files/deep/er/all.bin")).unwrap(),
            all_bytes(),
            "{point}"
        );
        let db = w.db_name("shop-2-1", "bakery.example.com");
        assert_eq!(databases(&w, "bakery"), vec![db.clone()], "{point}");
        assert_eq!(
            w.db.sql(&format!("SELECT COUNT(*) FROM `{db}`.notes")),
            "3\n",
            "{point}"
        );
        f.ok(&["plan", "--detailed-exitcode"], 0);
    }
}

/// Bakery's move to web2 has failed and been undone: the old copy is as it
/// was and online, nothing of it is on web2, only its old database is left.
fn bakery_kept(
    w: &World,
    to: &str,
    old_dir: &Path,
    before: &std::collections::BTreeMap<String, String>,
    old_db: &str,
) {
    assert_eq!(&snapshot(old_dir), before, "the old site is as it was");
    assert!(!w.site_dir(to, "bakery.example.com").exists());
    assert!(!w.root.join("vhosts/bakery.example.com.conf").exists());
    assert_eq!(databases(w, "bakery"), vec![old_db.to_string()]);
    assert_eq!(
        w.db.sql(&format!(
            "SELECT value FROM `{old_db}`.variables WHERE name = 'maintenance_mode'"
        )),
        "0\n",
        "the old site is back online"
    );
    let left: Vec<_> = std::fs::read_dir(w.root.join("platforms").join(to).join("sites"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("bakery"))
        .collect();
    assert!(left.is_empty(), "nothing left on web2: {left:?}");
}

#[test]
fn a_connection_cut_in_the_middle_of_a_transfer_is_undone_on_both_hosts() {
    let Some(w) = World::start() else { return };
    let f = &w.f;
    f.apply();
    let (old_dir, old_db) = seed_bakery(&w);
    // Big enough that the copy is still running when the cut comes.
    let big = old_dir.join("files/big.bin");
    write_big(&big, 256);
    let big_sum = sum(&big);
    let before = snapshot(&old_dir);
    f.set_site("bakery", "platform", "shop-2-1");

    let child = f
        .cmd(&["apply", "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The copy has begun on web2: its files are arriving.
    let arriving = w
        .site_dir("shop-2-1", "bakery.example.com")
        .join("files/big.bin");
    services::wait_until(
        "the copy to reach web2",
        std::time::Duration::from_secs(120),
        || Ok(std::fs::metadata(&arriving).is_ok_and(|m| m.len() > 0)),
    )
    .unwrap();
    w.sshd.cut_connections();
    let out = child.wait_with_output().unwrap();
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("failed") && log.contains("migrate bakery"),
        "{log}"
    );
    bakery_kept(&w, "shop-2-1", &old_dir, &before, &old_db);
    // Once the connection is back, the move goes through.
    f.apply();
    assert_eq!(sum(&arriving), big_sum);
}

#[test]
fn a_full_disk_on_the_target_server_fails_the_move_and_keeps_the_site() {
    let Some(w) = World::start() else { return };
    let f = &w.f;
    f.apply();
    let (old_dir, old_db) = seed_bakery(&w);
    std::fs::write(old_dir.join("files/big.bin"), vec![7u8; 6 << 20]).unwrap();
    let before = snapshot(&old_dir);
    // web2's platform shop-2-0 gets a 4 MiB filesystem of its own for its
    // sites (dental, living there, is moved out of the way first).
    f.set_site("dental", "platform", "shop-2-1");
    f.apply();
    let sites = w.root.join("platforms/shop-2-0/sites");
    let Some(_disk) = services::Tmpfs::mount_or_skip(&sites) else {
        return;
    };
    f.set_site("bakery", "platform", "shop-2-0");
    let out = f.run(&["apply", "--yes"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.all().contains("No space left on device"),
        "{}",
        out.all()
    );
    bakery_kept(&w, "shop-2-0", &old_dir, &before, &old_db);
}

#[test]
fn an_unreachable_server_stops_only_what_is_on_it() {
    let Some(w) = World::start() else { return };
    let f = &w.f;
    f.apply();
    let before = snapshot(&w.root);
    // web2 goes down; the local server's sites still change.
    let pid = w.sshd.pid().unwrap();
    // SAFETY: kill(2) on the pid of the sshd this test started.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    services::wait_until(
        "sshd to be gone",
        std::time::Duration::from_secs(30),
        || Ok(std::net::TcpStream::connect(("127.0.0.1", w.sshd.port)).is_err()),
    )
    .unwrap();
    f.set_site("dental", "platform", "shop-2-1");
    f.set_site("acme", "enabled", "false");
    let out = f.run(&["apply", "--yes"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("server web2 cannot be reached"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("disable acme"), "{}", out.stdout);
    assert_eq!(snapshot(&w.root), before, "nothing changed on web2");
    // A command about one site says why it cannot see web2's.
    let r = f.run(&["backups", "eatery"]);
    assert!(
        r.stderr.contains("server web2 cannot be reached"),
        "{}",
        r.all()
    );
}

/// Writes `mb` MiB of varied bytes to `path`, a MiB at a time.
fn write_big(path: &Path, mb: u32) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    for i in 0..mb {
        let chunk: Vec<u8> = (0..1u32 << 20).map(|j| ((i * 7 + j) % 251) as u8).collect();
        f.write_all(&chunk).unwrap();
    }
}

/// The SHA-256 of a file, in hex.
fn sum(path: &Path) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path).unwrap(), &mut h).unwrap();
    format!("{:x}", h.finalize())
}

#[test]
fn a_site_moved_onto_an_ssh_servers_nginx_is_checked_and_served_there() {
    let Some(w) = World::start() else { return };
    let (Some(fpm), Some(nginx)) = (PhpFpm::start(), Nginx::start()) else {
        return;
    };
    let f = &w.f;
    // web2's sites are served by its nginx, driven over ssh: vhosts
    // written into its conf_dir, `nginx -t` and the reload run there,
    // health checks sent from there.
    let web = format!(
        "    web:\n      kind: nginx\n      conf_dir: {conf}\n      listen: 127.0.0.1:{port}\n      \
         php_fpm: unix:{sock}\n      test: {test}\n      reload: {reload}\n      \
         check_url: http://127.0.0.1:{port}\n",
        conf = nginx.conf_dir.display(),
        port = nginx.port,
        sock = fpm.socket.display(),
        test = nginx.command_line(false),
        reload = nginx.command_line(true),
    );
    let yaml = w
        .hoist_yaml()
        .replace("databases:\n", &format!("{web}databases:\n"));
    f.write("hoist.yaml", &format!("{yaml}{EXAMPLE_HEALTH}"));
    let out = f.apply();
    assert!(
        out.stdout.contains("Apply complete: 9 success"),
        "{}",
        out.all()
    );
    let get = |host: &str| {
        let r = http_get(nginx.port, host, "/").unwrap();
        (r.status, r.text())
    };
    assert_eq!(get("eatery.example.com"), (200, "site: eatery\n".into()));
    assert!(nginx.conf_dir.join("eatery.example.com.conf").is_file());

    seed_bakery(&w);
    f.set_site("bakery", "platform", "shop-2-1");
    let out = f.apply();
    assert!(out.stdout.contains("1 success"), "{}", out.all());
    assert_eq!(get("bakery.example.com"), (200, "site: bakery\n".into()));
    let rec = common::last_task(f).to_string();
    assert!(
        rec.contains("health check http://bakery.example.com (preview)/: 200")
            && rec.contains("health check http://bakery.example.com/: 200"),
        "the preview and the site were checked through web2's nginx: {rec}"
    );
    f.ok(&["plan", "--detailed-exitcode"], 0);
}

/// How web2 is lost in the middle of a move.
#[derive(Clone, Copy, Debug)]
enum Loss {
    /// Its sshd is stopped.
    Down,
    /// It comes back at once presenting another host key.
    KeySwapped,
}

#[test]
fn a_target_server_going_down_in_a_move_is_undone_once_it_is_back() {
    lose_web2_in_a_move(Loss::Down);
}

#[test]
fn a_host_key_swapped_in_a_move_stops_it_until_the_key_is_right() {
    lose_web2_in_a_move(Loss::KeySwapped);
}

fn lose_web2_in_a_move(loss: Loss) {
    let Some(mut w) = World::start() else { return };
    w.f.apply();
    let (old_dir, old_db) = seed_bakery(&w);
    let big = old_dir.join("files/big.bin");
    // Big enough for sshd to go down while it is copied.
    write_big(&big, if let Loss::Down = loss { 256 } else { 4 });
    let big_sum = sum(&big);
    w.f.set_site("bakery", "platform", "shop-2-1");
    // A swapped key must be met by hoist's next connection, not by one it
    // tries while sshd is still down: hoist holds between two files of
    // the copy while the key is swapped.
    let holds = tempfile::tempdir().unwrap();
    let mut cmd = w.f.cmd(&["apply", "--yes"]);
    if let Loss::KeySwapped = loss {
        cmd.env("HOIST_FAILPOINT", "copy-file:hold")
            .env("HOIST_FAILPOINT_DIR", holds.path());
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let arriving = w
        .site_dir("shop-2-1", "bakery.example.com")
        .join("files/big.bin");
    let held = holds.path().join("copy-file.held");
    services::wait_until(
        "the copy to be under way on web2",
        std::time::Duration::from_secs(120),
        || {
            if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("hoist ended ({st}) before the copy"));
            }
            Ok(match loss {
                Loss::Down => std::fs::metadata(&arriving).is_ok_and(|m| m.len() > 0),
                Loss::KeySwapped => held.exists(),
            })
        },
    )
    .unwrap();
    w.sshd.stop();
    let host_key = w.sshd.dir().join("host_ed25519_key");
    let kept_key = std::fs::read(&host_key).unwrap();
    if let Loss::KeySwapped = loss {
        std::fs::remove_file(&host_key).unwrap();
        std::fs::remove_file(host_key.with_extension("pub")).ok();
        w.sshd.keygen(&host_key);
        w.sshd.start_again();
        std::fs::write(holds.path().join("copy-file.go"), b"").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_ne!(out.status.code(), Some(0), "{loss:?}: {log}");
    // The undo cannot reach web2: it waits rather than half undo.
    let rec = common::last_task(&w.f).to_string();
    assert!(
        rec.contains("the undo waits: server web2 does not answer"),
        "{loss:?}: {rec}"
    );
    if let Loss::KeySwapped = loss {
        assert!(
            rec.contains("host key"),
            "{loss:?}: the message names the key: {rec}"
        );
        // Still swapped: the next run leaves web2 and the move alone.
        let r = w.f.run(&["apply", "--yes"]);
        assert_eq!(r.code, 1, "{}", r.all());
        assert!(
            r.stderr.contains("server web2 cannot be reached"),
            "{}",
            r.all()
        );
        w.sshd.stop();
        std::fs::write(&host_key, &kept_key).unwrap();
    }
    assert_eq!(sum(&big), big_sum, "the old copy is untouched");
    assert_eq!(
        databases(&w, "bakery").len(),
        2,
        "both databases are kept meanwhile"
    );

    // web2 is back as it was: the next run undoes the move (the half copy
    // on web2 removed, the new database dropped), then carries it out.
    w.sshd.start_again();
    let out = w.f.apply();
    assert!(
        out.stderr.contains("recovered interrupted task"),
        "{loss:?}: {}",
        out.all()
    );
    assert!(!old_dir.exists());
    assert_eq!(sum(&arriving), big_sum);
    let db = w.db_name("shop-2-1", "bakery.example.com");
    assert_ne!(db, old_db);
    assert_eq!(databases(&w, "bakery"), vec![db]);
    w.f.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn the_watch_daemon_reconciles_an_ssh_server() {
    let Some(w) = World::start() else { return };
    let f = &w.f;
    // One pass of the daemon does what an apply would, on both servers.
    let out = f.run(&["watch", "--once"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(w.site_dir("shop-2-1", "eatery.example.com").is_dir());
    assert!(w.site_dir("shop-2-0", "dental.example.net").is_dir());
    assert!(f
        .host()
        .join("platforms/shop-1-1/sites/acme.example.com")
        .is_dir());
    f.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn the_watch_daemon_takes_a_lock_lost_with_its_connection_again() {
    let Some(w) = World::start() else { return };
    let f = &w.f;
    let log = f.inv().parent().unwrap().join("watch.log");
    let mut daemon = f
        .cmd(&["watch"])
        .env("RUST_LOG", "hoist=info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let wait_for = |needle: &str| {
        services::wait_until(needle, std::time::Duration::from_secs(120), || {
            Ok(read().contains(needle))
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", read()));
    };
    wait_for("pass 1 done");
    assert!(w.site_dir("shop-2-1", "eatery.example.com").is_dir());
    // The connection (and the lock session with it) is cut; the next pass
    // takes the lock again before it changes anything on web2.
    w.sshd.cut_connections();
    f.set_site("dental", "platform", "shop-2-1");
    wait_for("taking it again");
    wait_for("pass 2 done");
    assert!(
        w.site_dir("shop-2-1", "dental.example.net").is_dir(),
        "{}",
        read()
    );
    assert!(!w.site_dir("shop-2-0", "dental.example.net").exists());
    // SAFETY: kill(2) on the daemon this test started.
    unsafe { libc::kill(daemon.id() as libc::pid_t, libc::SIGTERM) };
    assert!(daemon.wait().unwrap().success(), "{}", read());
}

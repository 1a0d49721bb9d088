//! A rollout on real nginx and php-fpm (spec sections 8 and 9): a fleet
//! moves from a platform whose code serves every site to one whose code
//! answers 500 for chosen sites of the second wave: one at once (its own
//! cutover check fails, and its task undoes itself), one only once it has
//! served its cutover check (it passes the cutover, then fails the check
//! after the bake). The canary wave passes; the second wave halts at its
//! budget and its succeeded sites are put back, served by the old code
//! again; the last
//! wave is untouched.

mod common;
mod services;

use common::{git, tasks, Fixture};
use services::{free_port, http_get, Nginx, PhpFpm};

const FLEET: [&str; 7] = ["n01", "n02", "n03", "n04", "n05", "n06", "n07"];
const SECOND: [&str; 3] = ["n02", "n03", "n04"];
const LAST: [&str; 3] = ["n05", "n06", "n07"];

fn domain(s: &str) -> String {
    format!("{s}.example.com")
}

/// The old code: every site answers 200.
const OLD_PHP: &str = "<?php\necho 'old ', $_SERVER['HTTP_HOST'], \"\\n\";\n";

/// The new code: n03 is broken outright; n04 breaks once it has answered
/// one request on its live vhost (the cutover's check; a preview's server
/// name is the preview name, though its Host is the domain), as a site whose
/// first cron run breaks it would: its requests are counted in `hits`, so
/// the break follows an event, not the clock. Every other site answers 200.
fn new_php(hits: &std::path::Path) -> String {
    format!(
        "<?php\n\
         $host = $_SERVER['HTTP_HOST'];\n\
         $live = $_SERVER['SERVER_NAME'];\n\
         if ($live === 'n03.example.com') {{ http_response_code(500); echo \"broken\\n\"; exit; }}\n\
         if ($live === 'n04.example.com') {{\n\
           file_put_contents('{hits}', 'x', FILE_APPEND | LOCK_EX);\n\
           clearstatcache();\n\
           if (filesize('{hits}') > 1) {{ http_response_code(500); echo \"broken later\\n\"; exit; }}\n\
         }}\n\
         echo 'new ', $host, \"\\n\";\n",
        hits = hits.display()
    )
}

fn command_line(c: &std::process::Command) -> String {
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The reload hoist runs: `nginx -s reload`, then a wait until every
/// worker of the old configuration has exited. `nginx -s reload` returns
/// as soon as the master is signalled, and an old worker still accepts a
/// connection with the old configuration meanwhile: a health check right
/// after it may reach a server that does not know the new vhost yet.
fn reload_script(f: &Fixture, nginx: &Nginx) -> std::path::PathBuf {
    let path = f.tmp.path().join("reload-nginx.sh");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh
             master=$(cat {pid})
             old=$(ps -o pid= --ppid \"$master\")
             {reload} || exit 1
             i=0
             while [ $i -lt 600 ]; do
                 left=0
                 for p in $old; do kill -0 \"$p\" 2>/dev/null && left=1; done
                 [ $left = 0 ] && exit 0
                 sleep 0.05; i=$((i+1))
             done
             echo 'old nginx workers did not exit' >&2; exit 1
",
            pid = nginx.prefix.join("nginx.pid").display(),
            reload = command_line(&nginx.reload_command()),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn write_site(f: &Fixture, s: &str, platform: &str) {
    let labels = if SECOND.contains(&s) {
        "labels: { tier: basic }\n"
    } else {
        ""
    };
    f.write(
        &format!("sites/{s}.yaml"),
        &format!(
            "domain: {}\nplatform: {platform}\nprofile: standard\n{labels}",
            domain(s)
        ),
    );
}

fn commit(f: &Fixture, msg: &str) {
    git(&f.inv(), &["add", "-A"]);
    git(&f.inv(), &["commit", "-qm", msg]);
}

fn body(port: u16, s: &str) -> (u16, String) {
    let r = http_get(port, &domain(s), "/").expect("GET");
    (r.status, r.text())
}

#[test]
fn a_wave_failing_its_health_checks_on_nginx_halts_and_is_served_by_the_old_code_again() {
    let Some(fpm) = PhpFpm::start() else { return };
    let Some(nginx) = Nginx::start() else { return };
    let f = Fixture::example();
    // Only the fleet: the example's sites live on platforms with no PHP.
    for e in std::fs::read_dir(f.inv().join("sites")).unwrap().flatten() {
        std::fs::remove_file(e.path()).unwrap();
    }
    f.write("codebases/shop-1.0/index.php", OLD_PHP);
    let hits = f.tmp.path().join("n04-hits");
    f.write("codebases/shop-2.0/index.php", &new_php(&hits));
    // hoist's vhosts listen on every address (`listen: PORT`): on a port
    // of their own, since the harness's default server holds
    // 127.0.0.1:nginx.port and a reload cannot add the wildcard beside it.
    let port = free_port();
    f.write(
        "hoist.yaml",
        &format!(
            "servers:\n  local:\n    kind: local\n    root: .hoist-host\n    web:\n      \
             kind: nginx\n      conf_dir: {conf}\n      listen: {port}\n      \
             php_fpm: unix:{sock}\n      test: {test}\n      reload: {reload}\n      \
             check_url: http://127.0.0.1:{port}\n\
             policy: {{ parallel: 2 }}\n",
            conf = nginx.conf_dir.display(),
            sock = fpm.socket.display(),
            test = command_line(&nginx.test_command()),
            reload = reload_script(&f, &nginx).display(),
        ),
    );
    for s in FLEET {
        write_site(&f, s, "shop-1-0");
    }
    git(&f.inv(), &["init", "-q"]);
    commit(&f, "fleet");
    let r = f.run(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{}\n{}", r.all(), nginx.error_log());
    for s in FLEET {
        assert_eq!(body(port, s), (200, format!("old {}\n", domain(s))));
    }

    let settings = f.read("hoist.yaml");
    f.write(
        "hoist.yaml",
        &format!(
            "{settings}rollout:\n  waves:\n    - {{ name: canary, select: {{ sites: [n01] }} }}\n    \
             - {{ name: second, select: {{ labels: {{ tier: basic }} }} }}\n    - {{ name: last }}\n  \
             bake_s: 0\n  failure_budget: {{ max_failed: 1 }}\n  on_failure: rollback-wave\n"
        ),
    );
    for s in FLEET {
        write_site(&f, s, "shop-2-0");
    }
    commit(&f, "the fleet to shop-2-0 in waves");
    let count = |s: &str| tasks(&f).iter().filter(|t| t["site"] == s).count();
    let last_before: Vec<usize> = LAST.iter().map(|s| count(s)).collect();

    let r = f.run(&["apply", "--yes"]);
    assert_eq!(r.code, 1, "{}\n{}", r.all(), nginx.error_log());
    assert!(r.stdout.contains("Rollout HALTED"), "{}", r.all());
    assert!(
        r.stdout.contains("put back    n02") && r.stdout.contains("put back    n04"),
        "{}",
        r.all()
    );

    // The canary is on the new code; the second wave on the old code again.
    assert_eq!(body(port, "n01"), (200, "new n01.example.com\n".into()));
    for s in SECOND {
        assert_eq!(
            body(port, s),
            (200, format!("old {}\n", domain(s))),
            "{s}: {}",
            r.all()
        );
        assert!(f
            .host()
            .join(format!("platforms/shop-1-0/sites/{}", domain(s)))
            .is_dir());
        assert!(!f
            .host()
            .join(format!("platforms/shop-2-0/sites/{}", domain(s)))
            .exists());
    }
    // No preview vhost or new-copy vhost is left for nginx to serve.
    let confs: Vec<String> = std::fs::read_dir(&nginx.conf_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // hoist's own generation vhost, which tells when a reload is served.
        .filter(|n| n != "hoist-generation.conf")
        .collect();
    assert_eq!(confs.len(), FLEET.len(), "{confs:?}");
    // The last wave never started.
    for (s, n) in LAST.iter().zip(last_before) {
        assert_eq!(count(s), n, "{s} was touched");
        assert_eq!(body(port, s), (200, format!("old {}\n", domain(s))));
    }
    // n04 answered its cutover check, then failed the one after the bake.
    assert_eq!(std::fs::read(&hits).unwrap(), b"xx");
    let st = f.read("status/sites/n04.yaml");
    assert!(
        st.contains("halted_wave: second") && st.contains("site: failed"),
        "{st}"
    );
}

/// Tasks of a wave write and remove vhosts while another task tests and
/// reloads nginx: nginx reads its vhost directory by a glob and then opens
/// each file, so a file removed in between failed the other task's
/// `nginx -t` ("open() ... No such file"), which failed its switch. Writes
/// now wait for an activation to end: every activation here succeeds.
#[test]
fn vhosts_written_and_removed_during_an_activation_never_fail_it() {
    use hoist::driver::{NginxWeb, WebServer, Which};
    let Some(nginx) = Nginx::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let config: hoist::inventory::servers::NginxConfig = serde_yaml::from_str(&format!(
        "conf_dir: {conf}\nlisten: {port}\nphp_fpm: unix:/nonexistent.sock\n\
         test: {test}\nreload: {reload}\ncheck_url: http://127.0.0.1:{port}\n",
        conf = nginx.conf_dir.display(),
        test = command_line(&nginx.test_command()),
        reload = command_line(&nginx.reload_command()),
    ))
    .unwrap();
    let web = NginxWeb::new(tmp.path().to_path_buf(), config);
    let done = std::sync::atomic::AtomicBool::new(false);
    let writes = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Preview vhosts coming and going, as a wave's tasks make them.
            let mut i = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let d = hoist::names::Domain::new(&format!("x{}.example.com", i % 8)).unwrap();
                let text = format!(
                    "server {{ listen {port}; server_name x{i}.hoist-preview; return 200; }}\n"
                );
                web.write(&d, Which::Preview, Some(&text)).unwrap();
                web.write(&d, Which::Preview, None).unwrap();
                writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                i += 1;
            }
        });
        // At least 15 activations, and as many as it takes for the writer
        // to have come and gone 15 times meanwhile (a loaded machine may
        // give it few turns): the race is tried, however slow the writer.
        let mut failed = Vec::new();
        let mut activations = 0;
        // (Bounded: a writer that died must fail the test, not hang it.)
        while activations < 15
            || (writes.load(std::sync::atomic::Ordering::SeqCst) <= 15 && activations < 2000)
        {
            if let Err(e) = web.activate() {
                failed.push(e.to_string());
            }
            activations += 1;
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(failed.is_empty(), "{failed:#?}\n{}", nginx.error_log());
    });
    assert!(writes.load(std::sync::atomic::Ordering::SeqCst) > 15);
}

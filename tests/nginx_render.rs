//! The vhosts `hoist::nginx` renders are accepted by the real nginx and serve
//! what they promise through the real php-fpm: live (domain and alias),
//! settings and dot files denied, maintenance 503 with Retry-After, disabled
//! 403, and a preview reachable only under its preview name. The platform's
//! path holds a space.

mod services;

use hoist::names::Domain;
use hoist::nginx::{preview_name, Vhost, VhostState, DISABLED_STATUS, SITE_DIR_PARAM};
use services::{http_get, wait_for_http, Nginx, PhpFpm, Response};

const DOMAIN: &str = "shop.test";
const ALIAS: &str = "www.shop.test";

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers.iter().find_map(|h| {
        let (k, v) = h.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn rendered_vhosts_serve_every_state() {
    let Some(fpm) = PhpFpm::start() else { return };
    let Some(nginx) = Nginx::start() else { return };

    // A platform whose path has a space (and a ';'), with a site directory
    // holding a settings file that must never be served.
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("platforms/shop 2;1");
    let site_dir = format!("sites/{DOMAIN}");
    std::fs::create_dir_all(root.join(&site_dir)).expect("site dir");
    std::fs::write(
        root.join("index.php"),
        format!(
            "<?php\necho 'marker-7f3a host=', $_SERVER['HTTP_HOST'], \
             ' site=', $_SERVER['{SITE_DIR_PARAM}'], \"\\n\";\n"
        ),
    )
    .expect("index.php");
    std::fs::write(
        root.join(&site_dir).join("settings.yaml"),
        "secret: s3cr3t\n",
    )
    .expect("settings");
    std::fs::write(root.join(".env"), "SECRET=s3cr3t\n").expect(".env");

    let port = nginx.port;
    let domain = Domain::new(DOMAIN).unwrap();
    let preview = preview_name(&domain).unwrap();
    let render = |state: VhostState| {
        let text = Vhost {
            domain: domain.clone(),
            aliases: vec![Domain::new(ALIAS).unwrap()],
            listen: format!("127.0.0.1:{port}"),
            root: root.clone(),
            php_fpm: format!("unix:{}", fpm.socket.display()),
            site_dir: site_dir.clone(),
            state,
        }
        .render()
        .expect("render");
        std::fs::write(nginx.conf_dir.join(format!("{DOMAIN}.conf")), text).expect("write vhost");
        nginx.test().expect("nginx -t accepts the rendered vhost");
        nginx.reload();
    };
    let get = |host: &str, path: &str| http_get(port, host, path).expect("GET");
    let served = |r: &Response, host: &str| {
        r.status == 200 && r.text() == format!("marker-7f3a host={host} site={site_dir}\n")
    };

    // Live: the domain and the alias run the PHP code.
    render(VhostState::Live);
    let r = wait_for_http(port, DOMAIN, "/", |r| r.status == 200);
    assert!(served(&r, DOMAIN), "{r:?}");
    let r = get(ALIAS, "/some/clean/url?x=1");
    assert!(served(&r, ALIAS), "{r:?}");
    // Settings and dot files are not served (and settings.yaml's text never
    // appears), nor does a missing .php reach php-fpm.
    for path in [
        format!("/{site_dir}/settings.yaml"),
        format!("/{site_dir}/settings.php"),
        "/.env".to_string(),
        "/missing.php".to_string(),
    ] {
        let r = get(DOMAIN, &path);
        assert_eq!(r.status, 404, "{path}: {r:?}");
        assert!(!r.text().contains("s3cr3t"), "{path}: {r:?}");
    }
    // The preview name is not served by the live vhost.
    assert_eq!(get(preview.as_str(), "/").status, 404);

    // Maintenance: every path answers 503 with Retry-After.
    render(VhostState::Maintenance);
    for path in ["/", "/index.php", "/x/y"] {
        let r = get(DOMAIN, path);
        assert_eq!(r.status, 503, "{path}: {r:?}");
        assert_eq!(header(&r, "Retry-After"), Some("120"), "{r:?}");
        assert!(r.text().contains("maintenance"), "{r:?}");
    }
    assert_eq!(get(ALIAS, "/").status, 503);

    // Disabled.
    render(VhostState::Disabled);
    for host in [DOMAIN, ALIAS] {
        let r = get(host, "/index.php");
        assert_eq!(r.status, DISABLED_STATUS, "{r:?}");
        assert!(r.text().contains("disabled"), "{r:?}");
        assert!(!r.text().contains("marker-7f3a"), "{r:?}");
    }

    // Preview: the code under the preview name only; the domain and the
    // alias fall to the default server.
    render(VhostState::Preview {
        name: preview.clone(),
    });
    // The code sees the site's own domain as its host, as it will live
    // (Drupal picks sites/<domain> by it).
    let r = get(preview.as_str(), "/");
    assert!(served(&r, DOMAIN), "{r:?}");
    for host in [DOMAIN, ALIAS] {
        let r = get(host, "/");
        assert_eq!(r.status, 404, "{host}: {r:?}");
        assert!(!r.text().contains("marker-7f3a"), "{r:?}");
    }
    assert_eq!(
        get(preview.as_str(), &format!("/{site_dir}/settings.yaml")).status,
        404
    );
}

//! The real-services harness works end to end: MariaDB with a site database
//! and user, php-fpm and nginx serving a PHP vhost from hoist's conf_dir.

mod services;

use services::{http_get, text, wait_for_http, MariaDb, Nginx, PhpFpm};

#[test]
fn mariadb_php_fpm_and_nginx_serve_a_site() {
    let Some(db) = MariaDb::start() else { return };
    let Some(fpm) = PhpFpm::start() else { return };
    let Some(nginx) = Nginx::start() else { return };

    // A database and a user with a password, queried as that user through a
    // 0600 defaults-extra-file.
    let password = services::random_password();
    db.sql(&format!(
        "CREATE DATABASE smoke_site;\n\
         CREATE USER 'smoke_user'@'127.0.0.1' IDENTIFIED BY '{password}';\n\
         GRANT ALL PRIVILEGES ON smoke_site.* TO 'smoke_user'@'127.0.0.1';\n"
    ));
    let user_cnf = db.defaults_file_for("smoke_user", &password);
    let out = db.sql_as(
        &user_cnf,
        Some("smoke_site"),
        "CREATE TABLE t (v VARCHAR(20)); INSERT INTO t VALUES ('smoke-ok'); SELECT v FROM t;",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "smoke-ok\n");
    // The user is confined to its database.
    let out = db.sql_as(&user_cnf, None, "SELECT COUNT(*) FROM mysql.user;");
    assert!(!out.status.success(), "site user read mysql.user");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("denied"),
        "{}",
        text(&out)
    );
    // A wrong password is refused.
    let wrong = db.defaults_file_for("smoke_user", "not-the-password");
    let out = db.sql_as(&wrong, None, "SELECT 1;");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Access denied"),
        "{}",
        text(&out)
    );

    // Before the vhost exists, the default server answers 404.
    assert_eq!(
        http_get(nginx.port, "smoke.test", "/index.php")
            .expect("GET")
            .status,
        404
    );

    // A PHP site: the page reads the row back through mysqli, so the whole
    // chain (nginx → php-fpm → MariaDB) is exercised.
    let docroot = tempfile::tempdir().expect("docroot");
    std::fs::write(
        docroot.path().join("index.php"),
        format!(
            "<?php\n\
             $db = new mysqli('127.0.0.1', 'smoke_user', '{password}', 'smoke_site', {port});\n\
             $v = $db->query('SELECT v FROM t')->fetch_row()[0];\n\
             echo 'php ', PHP_MAJOR_VERSION, ' host=', $_SERVER['HTTP_HOST'], ' row=', $v, \"\\n\";\n",
            port = db.port
        ),
    )
    .expect("index.php");
    std::fs::write(
        nginx.conf_dir.join("smoke.test.conf"),
        format!(
            "server {{\n\
             listen 127.0.0.1:{port};\n\
             server_name smoke.test;\n\
             root {root};\n\
             index index.php;\n\
             location ~ \\.php$ {{\n\
             include /etc/nginx/fastcgi_params;\n\
             fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;\n\
             fastcgi_pass unix:{sock};\n\
             }}\n\
             }}\n",
            port = nginx.port,
            root = docroot.path().display(),
            sock = fpm.socket.display(),
        ),
    )
    .expect("vhost");
    nginx.test().expect("nginx -t accepts the vhost");
    nginx.reload();
    let r = wait_for_http(nginx.port, "smoke.test", "/index.php", |r| r.status == 200);
    assert_eq!(r.text(), "php 8 host=smoke.test row=smoke-ok\n", "{r:?}");
    // Other hosts still reach the default server.
    assert_eq!(
        http_get(nginx.port, "other.test", "/index.php")
            .expect("GET")
            .status,
        404
    );

    // A broken vhost fails `nginx -t`, and the running config keeps serving.
    std::fs::write(nginx.conf_dir.join("broken.conf"), "server { listen ; }\n").expect("write");
    let err = nginx.test().expect_err("nginx -t rejects a broken vhost");
    assert!(err.contains("broken.conf"), "{err}");
    let r = http_get(nginx.port, "smoke.test", "/index.php").expect("GET");
    assert_eq!(r.status, 200);
}

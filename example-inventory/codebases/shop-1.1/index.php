<?php
// The example platform's front page: a small page of our own (not a real
// application) that reads the site's database as a real application would,
// so the example inventory is served for real behind nginx and php-fpm.
// It answers 503 while the site is in maintenance, 500 if the database
// cannot be read, and otherwise 200 with the site's name.

header('Content-Type: text/plain; charset=utf-8');

function fail(int $status, string $why): void {
    http_response_code($status);
    if ($status === 503) {
        header('Retry-After: 120');
    }
    echo $why, "\n";
    exit;
}

// hoist's vhost names the site's directory (the Host header does not under
// a preview name); settings.yaml there is the one hoist writes.
$site_dir = $_SERVER['HOIST_SITE_DIR'] ?? '';
if (!preg_match('#^sites/[a-z0-9.-]+$#', $site_dir)) {
    fail(500, 'no site directory');
}
$lines = @file(__DIR__ . '/' . $site_dir . '/settings.yaml', FILE_IGNORE_NEW_LINES);
if ($lines === false) {
    fail(500, 'the site has no settings');
}
$db = [];
$in_db = false;
foreach ($lines as $line) {
    if ($line === 'database:') {
        $in_db = true;
    } elseif ($in_db && preg_match('/^  ([a-z_]+): (.*)$/', $line, $m)) {
        // Values are written as JSON strings (or bare words).
        $v = json_decode($m[2]);
        $db[$m[1]] = is_string($v) ? $v : $m[2];
    } elseif ($line !== '' && $line[0] !== ' ') {
        $in_db = false;
    }
}

try {
    if (($db['driver'] ?? '') === 'mysql') {
        $addr = $db['address'] ?? '127.0.0.1:3306';
        if (str_starts_with($addr, 'unix:')) {
            $dsn = 'mysql:unix_socket=' . substr($addr, 5);
        } else {
            $at = strrpos($addr, ':');
            $dsn = 'mysql:host=' . substr($addr, 0, $at) . ';port=' . substr($addr, $at + 1);
        }
        $pdo = new PDO($dsn . ';dbname=' . $db['name'] . ';charset=utf8mb4', $db['user'], $db['password']);
    } else {
        // The SQLite server keeps databases under the server root, two
        // levels above the platform: <root>/platforms/<platform>/.
        $file = dirname(__DIR__, 2) . '/databases/' . basename($db['name'] ?? '') . '.sqlite';
        if (!is_file($file)) {
            fail(500, 'the site database is missing');
        }
        $pdo = new PDO('sqlite:' . $file);
    }
    $pdo->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);
    $vars = [];
    foreach ($pdo->query("SELECT name, value FROM variables WHERE name IN ('site_name', 'maintenance_mode')") as $row) {
        $vars[$row['name']] = $row['value'];
    }
} catch (Throwable $e) {
    fail(500, 'the site database cannot be read');
}
if (($vars['maintenance_mode'] ?? '0') === '1') {
    fail(503, 'down for maintenance');
}
echo 'site: ', $vars['site_name'] ?? '(unnamed)', "\n";

<?php
/**
 * @file
 * hoist's Drupal 7 runner: one operation on one site, run by php-cli on the
 * server that holds the site. hoist carries this file in its binary
 * (src/drupal/runner.rs) and feeds it to `php -r` on stdin, followed by the
 * request: a JSON object that may hold passwords, which is why nothing of
 * the request is ever on a command line or in the environment.
 *
 * Request: {"op": "install"|"updatedb"|"maintenance"|"status"|"cache-clear"|"fix-paths",
 *           "root": absolute Drupal 7 root, "site": directory under sites/,
 *           "url": the site's URL (sets the host Drupal sees),
 *           "install": {...} for install, "on": bool for maintenance,
 *           "from": the old site directory for fix-paths}.
 * Answer: exactly one JSON object on stdout, {"ok": true, ...} or
 * {"ok": false, "error": "..."}. Anything Drupal prints goes to stderr, so
 * that stdout holds the answer and nothing else.
 */

$GLOBALS['hoist_answered'] = FALSE;

/**
 * Writes the answer on stdout, once.
 */
function hoist_answer(array $answer) {
  if ($GLOBALS['hoist_answered']) {
    return;
  }
  $GLOBALS['hoist_answered'] = TRUE;
  $flags = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE;
  fwrite(STDOUT, json_encode($answer, $flags) . "\n");
}

/**
 * A failure the runner reports: a message, and for a failed update, which.
 */
class HoistFailure extends Exception {
  public $extra;

  public function __construct($message, array $extra = array()) {
    parent::__construct($message);
    $this->extra = $extra;
  }
}

// Drupal calls exit() on some fatal errors (and PHP stops on a fatal error):
// the answer then says so instead of leaving stdout empty.
register_shutdown_function(function () {
  if (!$GLOBALS['hoist_answered']) {
    $last = error_get_last();
    $why = $last ? $last['message'] . ' in ' . $last['file'] . ':' . $last['line'] : 'exit() was called';
    hoist_answer(array('ok' => FALSE, 'error' => 'PHP stopped before the operation finished: ' . $why));
  }
});

// Every byte Drupal prints goes to stderr (flushed at each write), keeping
// stdout for the answer.
ob_start(function ($buffer) {
  if ($buffer !== '') {
    fwrite(STDERR, $buffer);
  }
  return '';
}, 1);

/**
 * HTML made plain text: list items and paragraphs end with "; ".
 */
function hoist_plain($html) {
  $html = preg_replace('#</(li|p)>#i', '; ', (string) $html);
  $text = html_entity_decode(strip_tags($html), ENT_QUOTES, 'UTF-8');
  return trim(preg_replace('/\s+/', ' ', $text), " ;\n");
}

/**
 * Checks the request's common fields and makes Drupal see the site's host.
 */
function hoist_enter(array $request) {
  foreach (array('op', 'root', 'site', 'url') as $key) {
    if (!isset($request[$key]) || !is_string($request[$key]) || $request[$key] === '') {
      throw new HoistFailure("request has no '$key'");
    }
  }
  $site = $request['site'];
  if (!preg_match('/^[A-Za-z0-9][A-Za-z0-9.-]*$/', $site) || strpos($site, '..') !== FALSE) {
    throw new HoistFailure("site directory name '$site' is not a plain domain");
  }
  $root = $request['root'];
  if (!is_file($root . '/includes/bootstrap.inc')) {
    throw new HoistFailure("$root is not a Drupal root: it has no includes/bootstrap.inc");
  }
  if (!chdir($root)) {
    throw new HoistFailure("cannot enter $root");
  }
  define('DRUPAL_ROOT', getcwd());
  require_once DRUPAL_ROOT . '/includes/bootstrap.inc';
  if (!defined('VERSION') || strpos(VERSION, '7.') !== 0) {
    throw new HoistFailure("$root is not Drupal 7 (its includes/bootstrap.inc defines no 7.x VERSION)");
  }
  drupal_override_server_variables(array('url' => $request['url']));
}

/**
 * Fails unless Drupal resolves the request's host to sites/<site>: a
 * sites.php alias or a more specific directory would otherwise make the
 * runner act on another site.
 */
function hoist_check_conf_path($site) {
  $want = 'sites/' . $site;
  if (!is_file(DRUPAL_ROOT . '/' . $want . '/settings.php')) {
    throw new HoistFailure("$want/settings.php does not exist: hoist renders it before the first run");
  }
  $got = conf_path(TRUE, TRUE);
  if ($got !== $want) {
    throw new HoistFailure("Drupal resolves this site's host to $got, not $want");
  }
}

/**
 * The site's state as its database and code say: core version, profile,
 * maintenance mode, and each enabled module's installed and newest schema.
 * Needs a bootstrap to DRUPAL_BOOTSTRAP_VARIABLES at least.
 */
function hoist_status() {
  require_once DRUPAL_ROOT . '/includes/install.inc';
  $modules = array();
  $rows = db_query("SELECT name, schema_version FROM {system} WHERE type = 'module' AND status = 1 ORDER BY name")->fetchAllKeyed();
  // drupal_get_schema_versions() lists update functions once, from those
  // defined at its first call: every .install file is loaded before it.
  // By drupal_get_filename(): module_load_install() needs common.inc,
  // which a bootstrap to the variables layer has not loaded.
  foreach (array_keys($rows) as $name) {
    $install = DRUPAL_ROOT . '/' . dirname(drupal_get_filename('module', $name)) . "/$name.install";
    if (is_file($install)) {
      require_once $install;
    }
  }
  foreach ($rows as $name => $schema) {
    $versions = drupal_get_schema_versions($name);
    $modules[$name] = array(
      'schema' => (int) $schema,
      'code_schema' => $versions ? (int) max($versions) : 0,
    );
  }
  return array(
    'core' => VERSION,
    'profile' => variable_get('install_profile', NULL),
    'site_name' => variable_get('site_name', NULL),
    'maintenance' => (bool) variable_get('maintenance_mode', 0),
    'modules' => (object) $modules,
  );
}

/**
 * A connection to the request's database, tried before the installer runs:
 * the installer reports a settings.php whose database it cannot reach as
 * "already installed", which would hide the cause.
 */
function hoist_check_database(array $db) {
  try {
    if ($db['driver'] === 'sqlite') {
      $dir = dirname($db['database']);
      if (!is_dir($dir) || !is_writable($dir)) {
        throw new HoistFailure("the SQLite database's directory $dir is missing or not writable");
      }
      new PDO('sqlite:' . $db['database']);
    }
    elseif ($db['driver'] === 'mysql') {
      $dsn = isset($db['unix_socket'])
        ? 'mysql:unix_socket=' . $db['unix_socket'] . ';dbname=' . $db['database']
        : 'mysql:host=' . $db['host'] . ';port=' . $db['port'] . ';dbname=' . $db['database'];
      new PDO($dsn, $db['username'], $db['password'], array(PDO::ATTR_TIMEOUT => 10));
    }
    else {
      throw new HoistFailure("unknown database driver '" . $db['driver'] . "'");
    }
  }
  catch (PDOException $e) {
    throw new HoistFailure('cannot connect to the database: ' . $e->getMessage());
  }
  global $databases;
  $have = isset($databases['default']['default']) ? $databases['default']['default'] : array();
  foreach (array('driver', 'database') as $key) {
    if (!isset($have[$key]) || (string) $have[$key] !== (string) $db[$key]) {
      throw new HoistFailure("settings.php names another database than the request ($key differs)");
    }
  }
}

/**
 * install: Drupal's own installer, non-interactively, with the request's
 * profile, site name, administrator and database.
 */
function hoist_install(array $request) {
  $in = isset($request['install']) && is_array($request['install']) ? $request['install'] : array();
  foreach (array('profile', 'site_name', 'site_mail', 'account_name', 'account_mail', 'account_pass', 'database') as $key) {
    if (!isset($in[$key]) || $in[$key] === '') {
      throw new HoistFailure("install request has no '$key'");
    }
  }
  $db = $in['database'];
  hoist_check_conf_path($request['site']);
  drupal_bootstrap(DRUPAL_BOOTSTRAP_CONFIGURATION);
  hoist_check_database($db);

  define('MAINTENANCE_MODE', 'install');
  require_once DRUPAL_ROOT . '/includes/install.core.inc';
  $settings = array(
    'parameters' => array(
      'profile' => $in['profile'],
      'locale' => isset($in['locale']) ? $in['locale'] : 'en',
    ),
    'server' => array('url' => $request['url']),
    'forms' => array(
      // Skipped by Drupal when settings.php already reaches the database,
      // as hoist's rendered settings.php does; kept so that the installer
      // never asks.
      'install_settings_form' => array(
        'driver' => $db['driver'],
        $db['driver'] => $db,
        'op' => 'Save and continue',
      ),
      'install_configure_form' => array(
        'site_name' => $in['site_name'],
        'site_mail' => $in['site_mail'],
        'account' => array(
          'name' => $in['account_name'],
          'mail' => $in['account_mail'],
          'pass' => array('pass1' => $in['account_pass'], 'pass2' => $in['account_pass']),
        ),
        'site_default_country' => '',
        'date_default_timezone' => isset($in['timezone']) ? $in['timezone'] : 'UTC',
        'clean_url' => TRUE,
        // No calls home from a host's sites. NULL, not FALSE, unchecks a
        // checkbox in a programmatic submission (drupal_form_submit()).
        'update_status_module' => array(1 => NULL, 2 => NULL),
        'op' => 'Save and continue',
      ),
    ),
  );
  try {
    install_drupal($settings);
  }
  catch (Exception $e) {
    // The installer's messages are HTML for its pages, and their title
    // (such as "Drupal already installed") says what happened.
    $title = function_exists('drupal_get_title') ? hoist_plain(drupal_get_title()) : '';
    throw new HoistFailure(($title !== '' ? "$title: " : '') . hoist_plain($e->getMessage()));
  }
  hoist_restore_modes($request['site']);
  return hoist_status();
}

/**
 * Undoes the installer's hardening of the site's directory (0555) and
 * settings.php (0444), which settings.php's skip_permissions_hardening
 * normally prevents: hoist rewrites settings.php on every migrate, and
 * spec section 4 keeps it 0600.
 */
function hoist_restore_modes($site) {
  $dir = DRUPAL_ROOT . '/sites/' . $site;
  clearstatcache();
  if ((fileperms($dir) & 0200) === 0) {
    chmod($dir, 0755);
  }
  if ((fileperms($dir . '/settings.php') & 0200) === 0) {
    chmod($dir . '/settings.php', 0600);
  }
}

/**
 * Drupal's update requirements (hook_requirements('update')): errors stop
 * the run, as update.php stops; warnings do not.
 */
function hoist_update_requirements() {
  $errors = array();
  foreach (module_invoke_all('requirements', 'update') as $requirement) {
    if (isset($requirement['severity']) && $requirement['severity'] == REQUIREMENT_ERROR) {
      $text = (isset($requirement['title']) ? $requirement['title'] : '') . ': ' . (isset($requirement['value']) ? $requirement['value'] : '');
      if (isset($requirement['description'])) {
        $text .= ' (' . $requirement['description'] . ')';
      }
      $errors[] = trim(html_entity_decode(strip_tags($text), ENT_QUOTES, 'UTF-8'));
    }
  }
  if ($errors) {
    throw new HoistFailure('update requirements not met: ' . implode('; ', $errors));
  }
}

/**
 * updatedb: every pending hook_update_N, in Drupal's dependency order, each
 * to completion (a multi-pass update is called until its $sandbox says it
 * has finished), then a full cache flush. The first failing update stops
 * the run; the updates before it stay done and are reported.
 */
function hoist_updatedb(array $request) {
  hoist_check_conf_path($request['site']);
  define('MAINTENANCE_MODE', 'update');
  // As update.php prepares itself: a minimal bootstrap first, Drupal's
  // fixes for an old database, then the full bootstrap.
  require_once DRUPAL_ROOT . '/includes/update.inc';
  require_once DRUPAL_ROOT . '/includes/common.inc';
  require_once DRUPAL_ROOT . '/includes/file.inc';
  require_once DRUPAL_ROOT . '/includes/entity.inc';
  require_once DRUPAL_ROOT . '/includes/unicode.inc';
  update_prepare_d7_bootstrap();
  drupal_bootstrap(DRUPAL_BOOTSTRAP_SESSION);
  require_once DRUPAL_ROOT . '/includes/install.inc';
  require_once DRUPAL_ROOT . '/modules/system/system.install';
  include_once DRUPAL_ROOT . '/includes/module.inc';
  $module_list['system']['filename'] = 'modules/system/system.module';
  module_list(TRUE, FALSE, FALSE, $module_list);
  drupal_load('module', 'system');
  module_implements('', FALSE, TRUE);
  drupal_language_initialize();
  drupal_maintenance_theme();
  hoist_update_requirements();
  drupal_bootstrap(DRUPAL_BOOTSTRAP_LANGUAGE);
  update_fix_d7_requirements();
  module_implements('', FALSE, TRUE);
  drupal_bootstrap(DRUPAL_BOOTSTRAP_FULL);
  drupal_maintenance_theme();
  include_once DRUPAL_ROOT . '/includes/batch.inc';
  drupal_load_updates();
  update_fix_compatibility();
  hoist_update_requirements();

  $pending = update_get_update_list();
  $start = array();
  $descriptions = array();
  $blocked = array();
  foreach ($pending as $module => $info) {
    if (isset($info['warning'])) {
      $blocked[] = trim(html_entity_decode(strip_tags($info['warning']), ENT_QUOTES, 'UTF-8'));
    }
    if (isset($info['start'])) {
      $start[$module] = $info['start'];
    }
    if (isset($info['pending'])) {
      foreach ($info['pending'] as $number => $text) {
        $descriptions[$module . '_update_' . $number] = trim(preg_replace('/^\d+ - /', '', $text));
      }
    }
  }
  // Never half-way: a module that cannot be updated stops the run before
  // any update, where update.php would run the others.
  if ($blocked) {
    throw new HoistFailure(implode('; ', $blocked));
  }
  $updates = $start ? update_resolve_dependencies($start) : array();
  foreach ($updates as $function => $update) {
    if (empty($update['allowed'])) {
      $missing = empty($update['missing_dependencies']) ? 'unknown' : implode(', ', $update['missing_dependencies']);
      throw new HoistFailure("$function cannot run: it depends on missing updates ($missing)");
    }
  }
  $done = array();
  foreach ($updates as $function => $update) {
    $module = $update['module'];
    $number = (int) $update['number'];
    // As update_batch(): the module's schema starts just below its first
    // pending update.
    if (isset($start[$module])) {
      drupal_set_installed_schema_version($module, $number - 1);
      unset($start[$module]);
    }
    $sandbox = array();
    $passes = 0;
    $message = '';
    try {
      do {
        $passes++;
        $returned = $function($sandbox);
        if (is_string($returned) && $returned !== '') {
          $message = trim(html_entity_decode(strip_tags($returned), ENT_QUOTES, 'UTF-8'));
        }
        $finished = isset($sandbox['#finished']) ? $sandbox['#finished'] : 1;
        unset($sandbox['#finished']);
      } while ($finished < 1);
    }
    catch (Exception $e) {
      require_once DRUPAL_ROOT . '/includes/errors.inc';
      $decoded = _drupal_decode_exception($e);
      $text = strtr('%type: !message in %function (line %line of %file).', $decoded);
      throw new HoistFailure(hoist_plain($text), array(
        'failed' => array('module' => $module, 'number' => $number, 'message' => hoist_plain($e->getMessage())),
        'updates' => $done,
      ));
    }
    drupal_set_installed_schema_version($module, $number);
    $done[] = array(
      'module' => $module,
      'number' => $number,
      'description' => isset($descriptions[$function]) ? $descriptions[$function] : '',
      'passes' => $passes,
      'message' => $message,
    );
  }
  // As update_finished().
  variable_del('update_d6');
  drupal_flush_all_caches();
  return array('updates' => $done, 'status' => hoist_status());
}

/**
 * maintenance: Drupal 7's `maintenance_mode` variable (not Drupal 6's
 * `site_offline`, which Drupal 7 never reads). Only the variables layer is
 * bootstrapped, so that a site whose code is newer than its database can be
 * switched before its updates run.
 */
function hoist_maintenance(array $request) {
  if (!isset($request['on']) || !is_bool($request['on'])) {
    throw new HoistFailure("maintenance request has no boolean 'on'");
  }
  hoist_check_conf_path($request['site']);
  drupal_bootstrap(DRUPAL_BOOTSTRAP_VARIABLES);
  $was = (bool) variable_get('maintenance_mode', 0);
  variable_set('maintenance_mode', $request['on'] ? 1 : 0);
  return array('was' => $was, 'now' => (bool) variable_get('maintenance_mode', 0));
}

/**
 * cache-clear: drupal_flush_all_caches() after a full bootstrap; it also
 * rebuilds the registry and the module and theme data.
 */
function hoist_cache_clear(array $request) {
  hoist_check_conf_path($request['site']);
  drupal_bootstrap(DRUPAL_BOOTSTRAP_FULL);
  drupal_flush_all_caches();
  return array();
}

/**
 * fix-paths: after a rename, every path under sites/<from>/ that Drupal 7
 * keeps in its database points to sites/<site>/ instead: module and theme
 * files (system), the class registry (registry, registry_file), custom
 * blocks' bodies, text fields' values and summaries (current and
 * revisions), and explicitly set variables (their unserialized strings,
 * serialized again). file_managed holds public:// URIs and needs nothing.
 * One transaction; the answer counts the rows changed per column.
 */
function hoist_fix_paths(array $request) {
  $from = isset($request['from']) ? $request['from'] : '';
  if (!is_string($from) || !preg_match('/^[A-Za-z0-9][A-Za-z0-9.-]*$/', $from) || strpos($from, '..') !== FALSE) {
    throw new HoistFailure("fix-paths request has no plain 'from' directory");
  }
  hoist_check_conf_path($request['site']);
  drupal_bootstrap(DRUPAL_BOOTSTRAP_VARIABLES);
  $old = 'sites/' . $from . '/';
  $new = 'sites/' . $request['site'] . '/';
  $columns = array(
    array('system', 'filename'),
    array('registry', 'filename'),
    array('registry_file', 'filename'),
    array('block_custom', 'body'),
  );
  if (db_table_exists('field_config')) {
    $fields = db_query("SELECT field_name FROM {field_config} WHERE module = 'text' AND storage_type = 'field_sql_storage' AND deleted = 0")->fetchCol();
    foreach ($fields as $name) {
      foreach (array('field_data_', 'field_revision_') as $prefix) {
        foreach (array('_value', '_summary') as $suffix) {
          $columns[] = array($prefix . $name, $name . $suffix);
        }
      }
    }
  }
  $changed = array();
  $txn = db_transaction();
  try {
    foreach ($columns as $tc) {
      list($table, $column) = $tc;
      if (!db_table_exists($table) || !db_field_exists($table, $column)) {
        continue;
      }
      $n = db_update($table)
        ->expression($column, "REPLACE($column, :old, :new)", array(':old' => $old, ':new' => $new))
        ->condition($column, '%' . db_like($old) . '%', 'LIKE')
        ->execute();
      if ($n) {
        $changed["$table.$column"] = (int) $n;
      }
    }
    $vars = db_query("SELECT name, value FROM {variable} WHERE value LIKE :old", array(':old' => '%' . db_like($old) . '%'))->fetchAllKeyed();
    $n = 0;
    foreach ($vars as $name => $raw) {
      $value = @unserialize($raw);
      if ($value === FALSE && $raw !== serialize(FALSE)) {
        throw new HoistFailure("variable $name cannot be unserialized: its paths under $old cannot be rewritten");
      }
      $fixed = hoist_replace_strings($value, $old, $new);
      if ($fixed !== $value) {
        variable_set($name, $fixed);
        $n++;
      }
    }
    if ($n) {
      $changed['variable.value'] = $n;
    }
  }
  catch (Exception $e) {
    $txn->rollback();
    throw $e;
  }
  unset($txn);
  return array('changed' => (object) $changed);
}

/**
 * $value with $old replaced by $new in every string it holds (arrays and
 * plain objects walked; other objects kept as they are).
 */
function hoist_replace_strings($value, $old, $new) {
  if (is_string($value)) {
    return str_replace($old, $new, $value);
  }
  if (is_array($value)) {
    foreach ($value as $k => $v) {
      $value[$k] = hoist_replace_strings($v, $old, $new);
    }
    return $value;
  }
  if ($value instanceof stdClass) {
    $copy = clone $value;
    foreach (get_object_vars($copy) as $k => $v) {
      $copy->$k = hoist_replace_strings($v, $old, $new);
    }
    return $copy;
  }
  return $value;
}

function hoist_main() {
  $raw = stream_get_contents(STDIN);
  $request = json_decode($raw, TRUE);
  if (!is_array($request)) {
    throw new HoistFailure('the request on stdin is not a JSON object: ' . json_last_error_msg());
  }
  hoist_enter($request);
  switch ($request['op']) {
    case 'install':
      return hoist_install($request);

    case 'updatedb':
      return hoist_updatedb($request);

    case 'maintenance':
      return hoist_maintenance($request);

    case 'status':
      hoist_check_conf_path($request['site']);
      drupal_bootstrap(DRUPAL_BOOTSTRAP_VARIABLES);
      return hoist_status();

    case 'cache-clear':
      return hoist_cache_clear($request);

    case 'fix-paths':
      return hoist_fix_paths($request);
  }
  throw new HoistFailure("unknown operation '" . $request['op'] . "'");
}

try {
  $result = hoist_main();
  hoist_answer(array('ok' => TRUE) + $result);
}
catch (HoistFailure $e) {
  hoist_answer(array('ok' => FALSE, 'error' => $e->getMessage()) + $e->extra);
}
catch (Throwable $e) {
  hoist_answer(array('ok' => FALSE, 'error' => get_class($e) . ': ' . $e->getMessage() . ' in ' . $e->getFile() . ':' . $e->getLine()));
}

// Writes portcullis.json, Portcullis's own libddwaf ruleset: one rule per attack shape, each with an id,
// a family (tags.family), the inputs it reads and a short why (its name). Edit here, then run
// `node plugins/inspect/rules/generate.mjs` and commit both files. Written for Portcullis, not
// derived from another project's ruleset; tuned on general attack shapes only.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
// Rules name the standard addresses only (the registry, ../addresses.json). The derived ones (long
// prose, bare words, text words, screened words) are routed when the ruleset is loaded, by
// ../routing.ts, from each rule itself.
const registry = JSON.parse(readFileSync(fileURLToPath(new URL('../addresses.json', import.meta.url)), 'utf8'))
const A = Object.fromEntries(registry.lists.filter((l) => l.kind === 'standard').map((l) => [l.name, l.address]))
const ALL = ['path', 'query', 'headers', 'cookies', 'body', 'keys']
const ARGS = ['query', 'cookies', 'body', 'keys']
const ARGSP = ['path', 'query', 'cookies', 'body', 'keys']
// SQL injection shapes that do not occur in real header values (user agents, referers, proxies) read headers too.
const ARGSPH = [...ARGSP, 'headers']
const DEC = ['urlDecodeUni', 'htmlEntityDecode', 'jsDecode', 'removeNulls', 'lowercase']
const rules = []
function rule (id, family, why, op, inputs, params, transformers = DEC) {
  // Each rule is its own collection (type): libddwaf reports one match per type, and per-route exclusions need every match.
  rules.push({
    id,
    name: why,
    tags: { type: id, category: 'attack_attempt', family },
    conditions: [{ operator: op, parameters: { inputs: inputs.map((i) => ({ address: A[i] })), ...params } }],
    transformers
  })
}
const re = (id, family, why, inputs, regex, transformers = DEC) => rule(id, family, why, 'match_regex', inputs, { regex, options: { case_sensitive: true } }, transformers)

// ---------- SQL injection
rule('pc-sqli-001', 'sqli', 'libinjection recognises the token sequence of an SQL injection', 'is_sqli', [...ARGSPH, 'files'], {}, ['urlDecodeUni', 'htmlEntityDecode', 'removeNulls'])
const SEP = '(?:\\s|/\\*.*?\\*/|\\+|\\(|`)+'
re('pc-sqli-002', 'sqli', 'UNION [ALL|DISTINCT] SELECT joins attacker rows to a query', ARGSPH, `(?:\\b|[\\d.])union${SEP}(?:all${SEP}|distinct${SEP})?\\(?\\s*select\\b`)
re('pc-sqli-003', 'sqli', 'a closing quote followed by a boolean comparison (tautology)', [...ARGS, 'headers'], '[\'"`)]\\s*(?:or|and|xor|\\|\\||&&|div|like)\\s*\\(?\\s*(?:\'[^\']{0,40}\'|"[^"]{0,40}"|[\\w.@]+|\\d+)\\s*(?:=|<>|!=|<=?|>=?|\\blike\\b|\\bis\\b|\\bin\\s*\\(|\\bbetween\\b|\\bregexp\\b|\\brlike\\b)')
re('pc-sqli-004', 'sqli', 'time-based blind SQL (sleep, benchmark, waitfor delay)', ARGSPH, '\\b(?:sleep|benchmark|pg_sleep|randomblob|dbms_lock\\.sleep|dbms_pipe\\.receive_message|sys\\.dbms_\\w+)\\s*\\(|\\bwaitfor\\s+(?:delay|time)\\s+[\'"]')
re('pc-sqli-005', 'sqli', 'database catalog and dangerous stored procedure names', ARGSPH, '\\b(?:information_schema|pg_catalog|pg_shadow|pg_user|mysql\\.(?:user|db)|sysobjects|syscolumns|sysusers|sys\\.(?:tables|objects|columns|databases|sql_logins)|sqlite_master|sqlite_temp_master|all_tables|all_users|user_tables|dba_users|msysobjects|msysaccessobjects|xp_cmdshell|xp_regread|xp_dirtree|sp_executesql|sp_oacreate|sp_configure|sp_password|utl_http|utl_inaddr|dbms_xmlgen|openrowset|opendatasource)\\b')
re('pc-sqli-006', 'sqli', 'a stacked statement after a semicolon (DDL/DML/exec)', ARGSPH, ';\\s*(?:(?:drop|truncate|alter|create)\\s+(?:table|database|schema|user|view|index|procedure|function|trigger)\\b|insert\\s+into\\b|delete\\s+from\\b|update\\s+[\\w`"\\[\\].]+\\s+set\\b|exec(?:ute)?\\s+(?:xp_|sp_|master\\.|immediate)|declare\\s+@|shutdown\\b|select\\s+[^;]{0,80}\\bfrom\\b|set\\s+@|grant\\s+\\w+|rename\\s+table)')
re('pc-sqli-007', 'sqli', 'a quote closing a literal then a comment that swallows the rest of the query', [...ARGS, 'headers'], '[\'"`)]\\s*;?\\s*(?:--[\\s-]*$|/\\*|#\\s*$|;\\s*--)')
re('pc-sqli-008', 'sqli', 'functions used to exfiltrate data through errors and files', ARGSPH, '\\b(?:load_file|extractvalue|updatexml|group_concat|name_const|make_set|concat_ws|unhex|json_keys|xmltype|dbms_xmlquery|ctxsys\\.\\w+|exp\\s*\\(\\s*~)\\s*\\(|@@(?:version|datadir|hostname|basedir|tmpdir|servername)\\b')
re('pc-sqli-009', 'sqli', 'SELECT ... INTO OUTFILE/DUMPFILE writes files on the database host', ARGSPH, '\\binto\\s+(?:out|dump)file\\b')
re('pc-sqli-010', 'sqli', 'a SELECT of everything or of database functions from a table', ARGSPH, '\\bselect\\s+(?:\\*|count\\s*\\(\\s*\\*|top\\s+\\d|(?:user|version|database|current_user|system_user|schema)\\s*\\(|@@|null\\s*,|0x[0-9a-f]+|\\d+\\s*,)[^;]{0,120}?\\bfrom\\s+[\\w.$\\x60"\\[\\]]+\\s*(?:where\\b|limit\\b|order\\b|group\\b|union\\b|as\\s+\\w+\\s*,|;|--|#|\\)|$)')
re('pc-sqli-011', 'sqli', 'MySQL versioned comment /*!...*/ used to hide keywords', ARGSPH, '/\\*!\\d*')
re('pc-sqli-012', 'sqli', 'JSON path and operator tricks that slip SQL past keyword filters', ARGS, '(?:->>?|#>>?|@>|<@)\\s*\'|\'\\$(?:\\.|\\[)|\\bjson_(?:extract|contains|search|unquote)\\s*\\(')
re('pc-sqli-013', 'sqli', 'a quote or parenthesis followed by an SQL keyword that continues the query', [...ARGS, 'headers'], '^[\\w.@-]*[\'"`)]+\\s*(?:\\|\\||&&|;)?\\s*\\(?\\s*(?:(?:select|union|having|order\\s+by|group\\s+by|insert|update|delete|exec|procedure\\s+analyse|limit\\s+\\d|where)(?:[\\s(`@*/+-]|$)|(?:and|or|xor)\\s+(?:\\d|\'|"|\\(|not\\b|true\\b|false\\b|null\\b|[a-z_]\\w*\\s*(?:=|<|>|!|\\blike\\b|\\bis\\b|\\bin\\b|\\bbetween\\b|\\bregexp\\b)))')
re('pc-sqli-014', 'sqli', 'boolean or arithmetic probe with a numeric comparison', [...ARGS, 'headers'], '\\b(?:and|or|xor|&&|\\|\\|)\\s+\\(?\\s*(?:[-+]?\\d+|\'\\d+\'|"\\d+")\\s*(?:=|<>|!=)\\s*\\(?\\s*(?:\\d+|\'\\d+\'|"\\d+"|\\(\\s*select)')
re('pc-sqli-015', 'sqli', 'conditional expressions used for blind SQL injection', ARGSPH, '\\b(?:if|iif|case\\s+when|elt|nullif|ifnull|coalesce|decode)\\s*\\(\\s*(?:\\(?\\s*select\\b|[\\w@()]+\\s*(?:=|<|>)\\s*[\\w@()\'"]+\\s*,)|\\bcase\\s+when\\b[^;]{1,80}\\bthen\\b')

// A quoted operator between two quotes: the value closes the app's string, applies an operator, and opens a new one.
re('pc-sqli-016', 'sqli', 'a quote, an SQL operator and a quote (\' = \', a\' ^ \'b, \' regexp \')', [...ARGS, 'files', 'headers'], '^[\\w.@-]*\'\\s*(?:<=>|<>|!=|<=|>=|<<|>>|[=&^/<>*+%|~-])\\s*\'\\s*[\\w.@-]*$|^[\\w.@-]*([\'"])\\s+(?:div|mod|regexp|rlike|not\\s+like|not\\s+rlike|sounds\\s+like|like|xor)\\s+[\'"]\\s*[\\w.@-]*$')

// More quoted-operator shapes. libinjection's test data is URL-encoded (`+` a space), as is what
// reaches a JSON, XML or header value; without jsDecode (MySQL's `\N` is NULL, not a letter).
const SQT = ['urlDecodeUni', 'removeNulls', 'lowercase']
const SQOP = '(?:<=>|<>|!=|<=|>=|<<|>>|[=&^/<>*+%|~!-]|\\b(?:or|and|xor|is|div|mod|like|rlike|regexp)\\b)'
re('pc-sqli-017', 'sqli', 'a quote, an operator, anything, an operator and a quote (aa\'|x*0!=\'1, \'<~\', 1\'/c is not null - \')', [...ARGS, 'headers'], `^[\\w.@-]{0,40}'\\s*${SQOP}[^']{0,60}${SQOP}\\s*'[\\w.@ +-]{0,40}$`, SQT)
const QUOTED_OP = "^[\\w.@-]{0,40}\\s?'\\s*(?:<=>|<>|!=|<=|>=|<<|>>|[=&^/<>*+%|~-]|div|mod|regexp|rlike|not\\s+like|not\\s+rlike|sounds\\s+like|like|xor)\\s*'\\s?[\\w.@-]{0,40}$"
re('pc-sqli-018', 'sqli', 'a quoted SQL operator between two words (A \'!=\' B, A \'DIV\' B, \'SOUNDS LIKE\')', [...ARGS, 'headers'], QUOTED_OP, SQT)
// A parameter the parser already decoded: `'+'` is a quoted plus, which URL-decoding again would make a space.
re('pc-sqli-021', 'sqli', 'a quoted plus between two words, as the parser decoded it or percent-encoded (\'+\', \'%2B\')', [...ARGS, 'headers'], "^[\\w.@-]{0,40}\\s?'\\s*(?:\\+|%2b)\\s*'\\s?[\\w.@-]{0,40}$", ['removeNulls', 'lowercase'])
re('pc-sqli-019', 'sqli', 'SQL keywords run together with numbers or hex (0xUNION SELECT, 1FROM[t]WHERE, (select .. from .. limit))', [...ARGS, 'headers'], '(?:\\b0x|\\d)[a-z]?union(?:\\s|/\\*.*?\\*/|\\()+(?:all\\s+|distinct\\s+)?select\\b|\\bselect\\s+\\S{0,40}?\\dfrom\\s*[\\[(`"\\s]|\\(\\s*select\\s+[\\w@*.,()\\s]{1,80}?\\bfrom\\s+[\\w.`"\\[\\]]+\\s+(?:where|limit|order|group)\\b[^)]{0,80}\\)', DEC)
re('pc-sqli-020', 'sqli', 'a SELECT of a function ending in WHERE, a number-operator-number then a comment, AND n n=n', [...ARGS, 'headers'], '\\bselect\\s+[^;(]{0,40}\\([^;]{0,80}?\\bfrom\\s+[\\w.`"\\[\\]]+\\s+where\\s*$|^\\s*\\d+\\s*[-+*/%^|&]\\s*\\d+\\s*(?:/\\*|--|#)|\\b(?:and|or)\\s+\\d+\\s+\\d+\\s*[=<>]\\s*\\d+', DEC)

// ---------- XSS
// Links to http(s) URLs, relative paths and fragments, and <details>, are ordinary markup in Markdown
// (pull-request and issue bodies); script in them is matched by the event-handler and scheme rules.
rule('pc-xss-001', 'xss', 'libinjection recognises HTML/JS that runs script', 'is_xss', [...ALL, 'files'], {}, ['urlDecodeUni', 'htmlEntityDecode', 'jsDecode', 'removeNulls'])
re('pc-xss-002', 'xss', 'an HTML/SVG/XML element that can carry script', [...ALL, 'files'], '<\\s*/?\\s*(?:script|iframe|frame|frameset|object|embed|applet|svg|math|base|meta|link|style|form|isindex|marquee|bgsound|layer|ilayer|xml|xss|template|animate\\w*|set|handler|listener|vmlframe|image|body|video|audio|source|input|button|keygen|textarea|select|a\\s+href\\s*=\\s*[\'"]?\\s*(?:[^h\\s\'"/#]|h(?:[^t]|t(?:[^t]|t(?:[^p]|p(?:[^s:]|s[^:])))))\\w*|img\\s+[^>]*src\\s*=\\s*[\'"]?\\s*(?:javascript|data|vbscript)|[a-z]+:[a-z]+)\\b')
re('pc-xss-003', 'xss', 'an HTML event handler attribute (onload=, onerror=, ...)', [...ALL, 'files'], '(?:^|[\\s"\'`/;<>])on[a-z]{3,50}\\s*=')
re('pc-xss-004', 'xss', 'a script URL scheme (javascript:, vbscript:, data:text/html)', ALL, '(?:^|[\\s"\'`(=:<,])(?:javascript|vbscript|livescript|mocha)\\s*:|\\bdata\\s*:\\s*(?:text/html|text/javascript|application/(?:x-)?javascript|image/svg\\+xml|application/xhtml)', ['urlDecodeUni', 'htmlEntityDecode', 'jsDecode', 'removeNulls', 'lowercase', 'compressWhiteSpace'])
re('pc-xss-005', 'xss', 'JavaScript sinks and dialogs used to prove or run injected script', ALL, '\\b(?:alert|prompt|confirm)\\s*(?:\\(|`)|\\bnew\\s+function\\s*\\(|\\b(?:settimeout|setinterval|execscript)\\s*\\(\\s*(?:[\'"`]|[a-z_$][\\w$]*\\s*[,)])|document\\s*\\.\\s*(?:cookie|domain|write(?:ln)?\\s*\\()|\\.\\s*(?:inner|outer)html\\s*=|(?:window|top|self|parent|frames|globalthis)\\s*\\[\\s*[\'"`]|fromcharcode\\s*\\(|\\batob\\s*\\(|\\beval\\s*\\(')
re('pc-xss-006', 'xss', 'JSFuck-style script built only from []()!+', ALL, '(?:\\[\\s*\\]|!\\s*\\[\\s*\\]|\\+\\s*\\[\\s*\\]|\\(\\s*!\\s*\\[\\s*\\]\\s*\\+?\\s*\\[\\s*\\]\\s*\\)){4,}', ['urlDecodeUni', 'removeNulls'])
re('pc-xss-007', 'xss', 'CSS that executes script (expression(), -moz-binding, behavior, url(javascript:))', ALL, '\\bexpression\\s*\\(|-moz-binding|\\bbehaviou?r\\s*:|@import\\b|url\\s*\\(\\s*[\'"]?\\s*(?:javascript|vbscript|data):', ['urlDecodeUni', 'htmlEntityDecode', 'cssDecode', 'removeNulls', 'lowercase'])
re('pc-xss-008', 'xss', 'attribute break-out into a new tag or script context', ALL, '[\'"]\\s*/?>\\s*<\\s*(?:script|svg|img|iframe|body|style|a|div|x)\\b|</\\s*(?:script|title|textarea|style|noscript|iframe)\\s*>')

const JS = 'javascript:'.split('').map((ch) => ch === ':' ? '(?::|&colon;)' : ch).join('(?:\\s|&[a-z]+;|&#x?[0-9a-f]+;?|\\\\[tnr])*')
re('pc-xss-009', 'xss', 'javascript: with entities or whitespace between its letters', ALL, JS, ['urlDecodeUni', 'removeNulls', 'lowercase'])
re('pc-xss-010', 'xss', 'a tag name written with spaces between its letters (< f o r m)', ALL, '<\\s*[a-z](?:\\s+[a-z]){2,}\\b', ['urlDecodeUni', 'htmlEntityDecode', 'removeNulls', 'lowercase'])
re('pc-xss-011', 'xss', 'DOM access used by injected script (window.location, document.createElement, ...)', ALL, '\\b(?:window|document|top|self|parent)\\s*\\.\\s*(?:location|cookie|domain|write|body\\.|createelement|queryselector\\w*|getelementby\\w+|open\\s*\\()|\\.textcontent\\s*=|\\burl\\s*\\(\\s*[\'"]?\\s*(?:javascript|vbscript)', ['urlDecodeUni', 'htmlEntityDecode', 'jsDecode', 'removeNulls', 'lowercase'])

// ---------- LFI
const LFI_T = ['urlDecodeUni', 'htmlEntityDecode', 'removeNulls', 'lowercase']
re('pc-lfi-001', 'lfi', 'directory traversal (../ or ..\\) climbing out of a path', ALL, '(?:^|[\\\\/=:;,\\s\'"])\\.{2,3}[\\\\/]|[\\\\/]\\.{2,3}(?:[\\\\/]|$)|\\.\\.\\.+[\\\\/]', LFI_T)
re('pc-lfi-002', 'lfi', 'encoded dots and slashes (overlong UTF-8, %u, 0x2e) that hide a traversal', ALL, '(?:%c0%a[ef]|%c1%9c|%c0%9v|%e0%80%a[ef]|%uff0e|%u2215|%u2216|%u002e|%252e|%255c|%252f)|(?:0x2e|\\.)(?:0x2e|\\.)(?:0x2f|0x5c|/|\\\\)|0x5c0x2e|0x2f0x2e|0x2e0x2e', ['removeNulls', 'lowercase'])
re('pc-lfi-003', 'lfi', 'well-known sensitive OS and credential files', ALL, '(?:^|[\\\\/\\s=:\'"])(?:etc[\\\\/]+(?:passwd|shadow|group|gshadow|hosts|issue|crontab|cron\\.d|sudoers|hostname|resolv\\.conf|fstab|mtab|master\\.passwd|security|os-release|lsb-release|redhat-release|debian_version|motd|profile|bash\\.bashrc|environment|inittab|aliases|exports|shells|securetty|login\\.defs|machine-id|network[\\\\/]|ssh[\\\\/]|ssl[\\\\/]|pam\\.d|apache2?[\\\\/]|httpd[\\\\/]|nginx[\\\\/]|mysql[\\\\/]|php\\d?[\\\\/]|php\\.ini|my\\.cnf|knockd|vsftpd|proftpd|samba[\\\\/]|ldap[\\\\/]|apt[\\\\/]|kubernetes[\\\\/]|docker[\\\\/]|shadow-|passwd-)|proc[\\\\/]+(?:self|\\d+|thread-self)(?:[\\\\/]|$)|proc[\\\\/]+(?:version|cpuinfo|meminfo|mounts|net[\\\\/]|sched_debug|partitions|filesystems|cmdline|environ|kcore|modules)|(?:boot|win|system)\\.ini|win(?:dows|nt)[\\\\/]+(?:system32|syswow64|win\\.ini|repair|panther|debug[\\\\/]|system\\.ini|php\\.ini|inf[\\\\/]|temp[\\\\/]|microsoft\\.net)|system32[\\\\/]+(?:drivers|config|inetsrv|logfiles|cmd\\.exe)|inetpub[\\\\/]|(?:usr[\\\\/]+local|opt)[\\\\/]+(?:apache\\d?|etc|nginx|lampp|tomcat)[\\\\/]|var[\\\\/]+(?:www|lib[\\\\/]+(?:mysql|docker|kubelet)|mail|spool[\\\\/]+cron|run[\\\\/]+secrets|lib[\\\\/]+php)[\\\\/]?|root[\\\\/]+\\.|web-inf[\\\\/]|meta-inf[\\\\/]|\\.ssh[\\\\/]|\\.aws[\\\\/]|\\.kube[\\\\/]|\\.docker[\\\\/]config|var[\\\\/]+log[\\\\/]|\\.bash_history|\\.bashrc|\\.zsh_history|\\.htaccess|\\.htpasswd|web\\.config|wp-config\\.php|\\.git[\\\\/]|\\.svn[\\\\/]|id_(?:rsa|dsa|ecdsa|ed25519)\\b|authorized_keys|known_hosts|\\.npmrc|\\.pgpass|\\.netrc|\\.git-credentials)', LFI_T)
re('pc-lfi-004', 'lfi', 'a request for a hidden file or folder (repository, secrets, tool config)', ['path'], '(?:^|/)\\.(?:git|svn|hg|bzr|cvs|env|aws|ssh|docker|kube|config|vscode|idea|claude|cursor|npmrc|yarnrc|pypirc|netrc|git-credentials|htaccess|htpasswd|ds_store|bash_history|bashrc|profile|history|terraform|gnupg|azure|gcloud|cache)(?:/|$|\\.|_)', LFI_T)
// Application and server configuration files named as a value (a file or path parameter), without traversal.
re('pc-lfi-005', 'lfi', 'application secrets and server configuration files named in a parameter', ARGS, '(?:^|[\\\\/])(?:wp-config\\.php|configuration\\.php|localsettings\\.php|config\\.inc\\.php|settings\\.php|database\\.yml|secrets\\.ya?ml|credentials\\.(?:xml|json|ya?ml)|appsettings(?:\\.\\w+)?\\.json|web\\.xml|tomcat-users\\.xml|application(?:-\\w+)?\\.(?:properties|ya?ml)|\\.env(?:\\.[\\w-]+)?|php\\.ini|httpd\\.conf|nginx\\.conf|my\\.cnf|ntuser\\.dat|\\.ds_store|docker-compose\\.ya?ml|\\.dockerenv|\\.git[\\\\/]+(?:config|head|index)|\\.aws[\\\\/]+credentials|\\.kube[\\\\/]+config)(?:[\\s\\x00?#;]|$)', LFI_T)

// ---------- RFI
// (OAuth/OIDC): an explicit port and a path that is not an admin or metadata endpoint. A CIDR
// (`0.0.0.0/0`, `127.0.0.1/32`) is not a URL.
re('pc-rfi-001', 'rfi', 'a URL whose host is a raw IP address passed as a parameter', ARGS, '^\\s*(?:https?|ftps?|gopher)://(?:[^/@\\s]*@)?(?:\\d{1,3}(?:\\.\\d{1,3}){3}|\\[[0-9a-f:.]+\\])', LFI_T)
// A URL ending in `?` names a file (`/shell.txt?`), a folder (`/?`) or a bare host: the shapes an
// inclusion needs so the app's suffix becomes a query. A resource path without an extension
// (`https://avatars.githubusercontent.com/u/21031067?`, GitHub webhooks) is plain data.
re('pc-rfi-002', 'rfi', 'a remote URL ending in ? (after a file name, a folder or a host), ??, # or a null byte, so the app appends its suffix as a query', ARGS, '^\\s*(?:https?|ftps?)://[^\\s]*(?:(?:\\.[a-z0-9]{1,8}|/)\\?|\\?\\?+|%00|\\x00|#)$|^\\s*(?:https?|ftps?)://[^\\s/?#]+\\?$', ['removeNulls', 'lowercase'])
// Headers too: no User-Agent, Referer or proxy header carries a URL with a null byte.
re('pc-rfi-006', 'rfi', 'a remote URL carrying a null byte, which cuts off the suffix the app appends', [...ARGS, 'headers'], '^\\s*(?:https?|ftps?)://[^\\s]*(?:\\x00|%00)', ['lowercase'])
re('pc-rfi-003', 'rfi', 'inclusion-capable URL schemes (file:, gopher:, dict:, ldap:, jar:, ...)', ARGSP, '(?:^|[\\s=(\'"/])(?:file|gopher|dict|ldaps?|tftp|jar|netdoc|local_file|smb|sftp|ssh2\\.\\w+|ogg|rar|expect|ftp)\\s*:\\s*/', LFI_T)
re('pc-rfi-004', 'rfi', 'a full URL inside the request path', ['path'], '/(?:https?|ftps?|file)\\s*:\\s*/', LFI_T)
re('pc-rfi-005', 'rfi', 'a URL with an encoded slash before @, so the host part is not what it looks like', ARGS, '^\\s*(?:https?|ftps?)://[^\\s/?#@]*(?:%2f|%5c|\\\\)[^\\s?#]*@', ['lowercase'])

// ---------- RCE
const CMDS = 'cat|tac|nl|head|tail|more|less|ls|dir|id|whoami|uname|hostname|ifconfig|ip|netstat|ss|ps|kill|pkill|killall|wget|curl|nc|ncat|netcat|telnet|ssh|scp|sftp|ftp|tftp|bash|sh|zsh|ksh|csh|dash|tcsh|fish|busybox|python[23]?|perl|ruby|php\\d?|node|lua|awk|gawk|nawk|sed|find|grep|egrep|fgrep|echo|printf|touch|chmod|chown|chgrp|rm|rmdir|mv|cp|mkdir|ln|dd|tar|zip|unzip|gzip|gunzip|base64|xxd|od|hexdump|env|printenv|export|sleep|ping|nslookup|dig|host|traceroute|crontab|nohup|sudo|su|passwd|useradd|usermod|systemctl|service|mount|history|alias|exec|eval|xargs|tee|strings|stat|which|whereis|locate|uptime|who|last|df|du|free|lsof|socat|openssl|gcc|cc|c89|c99|mkfifo|mknod|vi|vim|nano|ed|expect|tclsh|wish|sort|uniq|wc|cut|rev|file|diff|cmp|md5sum|sha1sum|sha256sum|getent|groups|finger|pwd|set|unset|shopt|source|timeout|watch|screen|tmux|at|batch|logger|wall|write|shutdown|reboot|halt|init|iptables|tcpdump|nmap|fping|arp|route|chattr|lsattr|setfacl|getfacl|jq|yes|seq|shuf|split|join|paste|fold|fmt|pr|column|less|zcat|bzcat|xzcat|zless|rsync|jshell|irb|ruby|runghc|ghci|tclsh|csi|gdb|strace|ltrace|ldd|objdump|readelf'
const DISTINCT = 'whoami|uname|ifconfig|ipconfig|netstat|wget|curl|ncat|netcat|telnet|bash|zsh|ksh|csh|tcsh|busybox|chmod|chown|chgrp|xxd|hexdump|printenv|nslookup|traceroute|crontab|nohup|sudo|useradd|usermod|systemctl|lsof|socat|mkfifo|mknod|iptables|tcpdump|nmap|getent|bsdtar|tclsh|strace|ltrace|ldd|objdump|readelf|rmdir|gunzip|bzcat|xzcat|zcat|pkill|killall'
const CMDS_AFTER_SEP = CMDS + '|date|time|git|svn|make|docker|kubectl|npm|pip|apt|apt-get|yum|dnf|apk|java|javac'
const CMDRE = `(?:[;&|\\n\\r]|\\$\\(|\\$\\{ifs\\})\\s*(?:${CMDS_AFTER_SEP})(?:\\s+[-+/~.$\\d"'\\\\{*?]|\\s*(?:[;&|\`)<>]|$)|\\$\\{?ifs)`
const CMDSTART = `^\\s*(?:${CMDS})\\s+[-+/~$\\\\{*?]|^\\s*(?:${DISTINCT})[\\d.]*(?:\\s|$)`
re('pc-rce-001', 'rce', 'a shell separator followed by a command and its argument', ALL, CMDRE, ['urlDecodeUni', 'removeNulls', 'lowercase'])
re('pc-rce-002', 'rce', 'the same with shell quoting/escaping removed (c\\at, c\'a\'t)', ALL, CMDRE, ['urlDecodeUni', 'removeNulls', 'shell_unescape', 'lowercase'])
re('pc-rce-012', 'rce', 'a value that is itself a command line (a command and its options or a path)', ALL, CMDSTART, ['urlDecodeUni', 'removeNulls', 'shell_unescape', 'lowercase'])
re('pc-rce-003', 'rce', 'command substitution ($(...), $(()), {cmd,arg} brace expansion)', ALL, `\\$\\(\\s*\\(?\\s*(?:${CMDS})\\b|\\{\\s*(?:${CMDS})\\s*,|\\$\\(\\s*\\)|\\$\\(\\s*\\(`, ['urlDecodeUni', 'removeNulls', 'shell_unescape', 'lowercase'])
re('pc-rce-013', 'rce', 'a command in backticks (shell command substitution) on one line', ALL, `\`\\s*(?:${CMDS})(?:\\s+[-/~$\\d][^\`\\n]*)?\`|[(.=@{]\\s*\`\\s*(?:${CMDS})\\s[^\`\\n]*\``, ['urlDecodeUni', 'removeNulls', 'lowercase'])
re('pc-rce-004', 'rce', 'an absolute path to a shell or system binary', ALL, '(?:^|[\\s;&|`\'"(=<>{,])/(?:usr/)?(?:local/)?s?bin/[a-z0-9_.?*\\[\\]-]+|/dev/(?:tcp|udp)/|/\\?\\?\\?/|/[a-z?*]*[?*][a-z?*]*/[a-z?*]*[?*]', ['urlDecodeUni', 'removeNulls', 'lowercase'])
re('pc-rce-005', 'rce', 'shellshock function definition in a value', ALL, '\\(\\s*\\)\\s*\\{[^}]*;\\s*\\}', ['urlDecodeUni', 'removeNulls'])
re('pc-rce-006', 'rce', 'Windows shell commands and batch control flow', ALL, '(?:^|[;&|\\n\\r`\'"(])\\s*(?:cmd(?:\\.exe)?\\s*/[ckr]|powershell(?:\\.exe)?\\b|pwsh(?:\\.exe)?\\b|certutil(?:\\.exe)?\\s|bitsadmin|mshta|rundll32|regsvr32|wmic\\b|net\\s+(?:user|localgroup|share|view|use|start|stop)\\b|reg\\s+(?:add|query|delete|save)\\b|schtasks|taskkill|tasklist|systeminfo|ipconfig|type\\s+[a-z%]:?[\\\\/]|del\\s+/|copy\\s+[a-z]:|start\\s+/b)|\\bfor\\s+[^\\n]{0,80}?%%?~?\\S{1,20}\\s+in\\s*\\([^)]*\\)\\s*do\\b|\\bif\\s+(?:/i\\s+)?(?:not\\s+)?\\(?\\s*[^\\s=]+\\s*(?:={2,3}|\\s(?:equ|neq|lss|leq|gtr|geq)\\s)\\s*[^\\s)]+\\s*\\)?\\s+(?:do\\s+)?@?(?:echo|goto|cmd|set|call|exit|del|copy|start|type|[a-z]+\\.(?:exe|bat|cmd))\\b|\\bif\\s+(?:/i\\s+)?(?:not\\s+)?(?:exist|defined|errorlevel|cmdextversion)\\b|%(?:comspec|systemroot|windir|programfiles|appdata|temp|userprofile|homepath)%|[;&|]\\s*echo\\b[^<>\\n]{0,200}[<>]\\s*nul\\s*$', ['urlDecodeUni', 'removeNulls', 'lowercase'])
re('pc-rce-007', 'rce', 'PowerShell cmdlets and download cradles', ALL, '\\b(?:invoke-(?:expression|webrequest|restmethod|command|item|wmimethod|shellcode)|iex\\s*[(\\s]|new-object\\s+(?:net\\.webclient|system\\.net|-com)|start-process|downloadstring|downloadfile|get-(?:process|childitem|content|wmiobject|service|localuser)|set-(?:executionpolicy|content|item)|remove-item|-encodedcommand|\\s-enc\\s+[a-z0-9+/=]{8,}|frombase64string|\\[system\\.convert\\])', ['urlDecodeUni', 'removeNulls', 'lowercase'])
re('pc-rce-008', 'rce', 'shell variable tricks that assemble a command ($IFS, $c1$c2$c3, a=b;c=d;...)', ALL, '\\$\\{?ifs\\b|\\balias\\s+[\\w.-]+=|\\$\\{[a-z_]+:[\\d-]|(?:\\$\\{?[a-z_]\\w*\\}?){3,}|(?:^|;)\\s*(?:[a-z_]\\w{0,4}=[^;&|\\s]{0,4};\\s*){3,}', ['urlDecodeUni', 'removeNulls', 'lowercase'])
re('pc-rce-014', 'rce', 'mail protocol commands (IMAP, SMTP, POP3) injected after a line break', ARGS, '[\\r\\n]\\s*[a-z]\\d{1,6}\\s+(?:examine|select|fetch|store|login|list|lsub|status|append|uid|capability|noop|logout|create|delete|rename|copy|search|authenticate|expunge)\\b|[\\r\\n]\\s*(?:helo|ehlo)\\s+\\S|[\\r\\n]\\s*(?:mail\\s+from|rcpt\\s+to)\\s*:|[\\r\\n]\\s*(?:vrfy|expn|retr|dele)\\s+\\S', ['urlDecodeUni', 'removeNulls', 'lowercase'])
re('pc-rce-011', 'rce', 'a shell variable run as a command after a separator ($a -x)', ALL, '(?:&&|\\|\\||;|\\|)\\s*\\$\\{?[a-z_]\\w*\\}?\\s+-', ['urlDecodeUni', 'removeNulls', 'lowercase'])
re('pc-rce-009', 'rce', 'reverse shell and interpreter one-liners', ALL, '\\b(?:bash|sh|zsh)\\s+-[ic]\\b|\\bpython[23]?\\s+-c\\b|\\bperl\\s+-e\\b|\\bruby\\s+-e\\b|\\bphp\\s+-r\\b|\\bnc\\s+(?:-[a-z]+\\s+)*[\\w.]+\\s+\\d+|\\bsocket\\.socket\\(|\\bmkfifo\\b|\\b0\\s*<\\s*&\\s*\\d+|>\\s*&\\s*/dev/|-wrapper\\s', ['urlDecodeUni', 'removeNulls', 'shell_unescape', 'lowercase'])
re('pc-rce-010', 'rce', 'a command with a sensitive path or an output redirection', ARGS, `^\\s*(?:${CMDS})\\s+(?:-[a-z-]+\\s+)*(?:/etc/|/proc/|/var/|/tmp/|/dev/|/root/|/home/|~/|\\$[a-z{])|\\|\\s*(?:sh|bash|zsh|ksh|dash)\\b(?:\\s|$)|>\\s*/(?:tmp|var|etc|dev)/`, ['urlDecodeUni', 'removeNulls', 'shell_unescape', 'lowercase'])

// ---------- PHP
re('pc-php-001', 'php', 'a PHP open tag in input', ALL, '<\\?(?:php|=|\\s)|\\[\\?php', ['urlDecodeUni', 'htmlEntityDecode', 'removeNulls', 'lowercase'])
const PHP_LONG = 'shell_exec|passthru|proc_open|pcntl_exec|assert_options|create_function|call_user_func(?:_array)?|preg_replace(?:_callback)?|base64_decode|gzinflate|gzuncompress|gzdecode|bzdecompress|str_rot13|file_get_contents|file_put_contents|fsockopen|pfsockopen|stream_socket_client|readfile|include_once|require_once|phpinfo|posix_\\w+|ini_set|ini_restore|putenv|move_uploaded_file|unserialize|highlight_file|show_source|php_uname|register_shutdown_function|register_tick_function|escapeshellcmd|escapeshellarg|mb_ereg_replace|iterator_apply|get_defined_vars|get_defined_functions|phpversion|var_dump|print_r|var_export|scandir|opendir|array_map|array_filter|array_walk|usort|uasort|uksort|curl_exec|curl_init|simplexml_load_\\w+|dl_open|openlog|ob_start|create_function|getmypid|getmyuid|get_current_user|sys_get_temp_dir|parse_str|extract|compact'
// include and require only with an argument: prose about module loaders writes `require()`.
const PHP_SHORT = 'system|exec|popen|assert|eval|fopen|fwrite|fputs|file|glob|chr|ord|getenv|ini_get|chdir|unlink|rename|copy|mail|symlink|substr|strrev|implode|explode|hex2bin|pack|define|constant'
re('pc-php-002', 'php', 'PHP functions that execute code, commands or read files', ALL, `(?:${PHP_LONG})(?:\\s|#[^\\n]*\\n|/\\*.*?\\*/)*\\(|(?:^|[^@\\w$.])(?:${PHP_SHORT})(?:\\s*(?:#[^\\n]*\\n|/\\*.*?\\*/)\\s*)*\\(|(?:^|[^@\\w$.])(?:include|require)(?:\\s*(?:#[^\\n]*\\n|/\\*.*?\\*/)\\s*)*\\(\\s*[^)\\s]|\\b(?:system|exec|eval|assert|passthru|include|require)\\s+['"$]`, ['urlDecodeUni', 'htmlEntityDecode', 'removeNulls', 'lowercase'])
re('pc-php-003', 'php', 'PHP superglobals and input streams', ALL, '\\$_(?:get|post|cookie|request|server|files|env|session)\\b|\\$globals\\b|\\$http_raw_post_data|\\$http_\\w+_vars|php://(?:input|filter|memory|temp|stdin|fd)', ['urlDecodeUni', 'htmlEntityDecode', 'removeNulls', 'lowercase'])
re('pc-php-004', 'php', 'PHP stream wrappers used for inclusion and deserialization', ALL, '\\b(?:php|phar|zlib|compress\\.zlib|compress\\.bzip2|glob|expect|data|zip|ogg|rar|ssh2\\.(?:shell|exec|tunnel|sftp|scp))://', ['urlDecodeUni', 'htmlEntityDecode', 'removeNulls', 'lowercase'])
re('pc-php-005', 'php', 'a PHP serialized object or array (object injection)', ALL, '(?:^|[;{(=\\s])(?:[oc]:\\d+:"[^"]{1,100}":\\d+:\\{|a:\\d+:\\{[sibdo]:)', ['urlDecodeUni', 'removeNulls', 'lowercase'])
re('pc-php-006', 'php', 'PHP runtime configuration directives', ALL, '\\b(?:allow_url_include|allow_url_fopen|auto_prepend_file|auto_append_file|disable_functions|open_basedir|safe_mode|register_globals|suhosin\\.\\w+|zend\\.\\w+|session\\.save_path|upload_tmp_dir|extension_dir|enable_dl|magic_quotes_gpc|display_errors|error_log|include_path|mail\\.add_x_header|sendmail_path)\\s*=?', ['urlDecodeUni', 'removeNulls', 'lowercase'])
re('pc-php-007', 'php', 'PHP variable functions and callable tricks ($f(...), ("sys"."tem")(...), casts)', ARGS, '\\$+[a-z_\\d]*\\s*(?:\\[[^\\]]*\\]|\\{[^}]*\\})*\\s*\\(|\\)\\s*\\(\\s*[\'"][^\'"]*[\'"]\\s*\\)|\\(\\s*(?:string|array|object|int|bool)\\s*\\)\\s*[\'"\\[]|[\'"]\\s*\\.\\s*[\'"][a-z_]+[\'"]\\s*\\.\\s*[\'"]|\\(\\s*[a-z_]+\\s*\\)\\s*\\(\\s*[\'"]', ['urlDecodeUni', 'htmlEntityDecode', 'removeNulls', 'removeComments', 'lowercase'])
re('pc-php-008', 'php', 'an uploaded file name with a server-executable extension', ['files'], '\\.(?:php\\d?|phtml|phar|pht|phps|inc|asp|aspx|ashx|asmx|jsp|jspx|cgi|pl|py|sh|shtml|htaccess|config)(?:\\.|$|\\s|;)|(?:^|[\\\\/])sess_[a-z0-9,-]{16,}$', ['urlDecodeUni', 'removeNulls', 'lowercase'])

// ---------- Java
const JT = ['urlDecodeUni', 'htmlEntityDecode', 'jsDecode', 'removeNulls', 'lowercase']
re('pc-java-001', 'java', 'fully qualified names of sensitive JDK packages', ALL, '\\b(?:java|javax|jdk|sun|com\\.sun)\\.(?:lang|io|nio|net|rmi|naming|beans|management|script|security|reflect|misc|invoke|util\\.(?:zip|jar|concurrent|logging|prefs))\\.[a-z$_]', JT)
re('pc-java-002', 'java', 'Java reflection, process creation and deserialization gadget classes', ALL, '\\b(?:runtime\\s*\\.\\s*getruntime|getruntime\\s*\\(|processbuilder|processimpl|unixprocess|getclass\\s*\\(\\s*\\)|class\\s*\\.\\s*forname|forname\\s*\\(|getdeclaredmethod|getmethod\\s*\\(|newinstance\\s*\\(|\\.invoke\\s*\\(|classloader|urlclassloader|scriptenginemanager|invokertransformer|chainedtransformer|constanttransformer|instantiatetransformer|instantiatefactory|clonetransformer|forclosure|whileclosure|prototypeclonefactory|prototypeserializationfactory|templatesimpl|jdbcrowsetimpl|unicastref|annotationinvocationhandler|badattributevalueexpexception|transformedmap|lazymap|commons\\.collections|xalan\\.xsltc|beanutils|bsh\\.interpreter|groovy\\.\\w+\\.methodclosure|javassist|mchange\\.v2|objectinputstream|xmldecoder|xstream|runtime\\.exec|\\.exec\\s*\\(\\s*[\'"])', JT)
re('pc-java-003', 'java', 'Log4j/JNDI lookup ($' + '{jndi:...}) and nested lookup obfuscation', ALL, '\\$\\{[^}]{0,80}(?:jndi|ldaps?:|rmi:|dns:|iiop:|corba:|nds:|nis:|lower:|upper:|env:|sys:|java:|date:|main:|ctx:|k8s:|docker:|spring:|web:|log4j:|bundle:|base64:|event:|marker:|map:|sd:|::-)|\\$\\{\\s*\\$\\{|\\bjndi\\s*:\\s*(?:ldaps?|rmi|dns|iiop|corba|nds|nis|https?)\\b', JT)
re('pc-java-004', 'java', 'a Java serialized object stream (magic bytes, hex or base64)', ALL, 'ro0ab|aced0005|\\\\xac\\\\xed\\\\x00\\\\x05|%ac%ed%00%05|h4siaaaaaaaa', ['removeNulls', 'lowercase'])
re('pc-java-005', 'java', 'OGNL / Spring / JSP expression language that reaches Java', ALL, '%\\{|#_?memberaccess|@ognl|ognl\\.|#context\\[|#request\\[|#parameters|#attr\\[|@java\\.|\\bnew\\s+java\\.|#\\{[^}]{0,100}(?:\\.|\\()|\\$\\{[^}]{0,100}(?:getclass|classloader|runtime|forname|\\bt\\s*\\(|\\.class\\b|\\bnew\\s)|\\bt\\s*\\(\\s*java\\.', JT)
re('pc-java-006', 'java', 'class.module.classLoader style bean-property manipulation (Spring4Shell)', ['keys', 'query', 'body'], '(?:^|[.\\[])class\\s*[.\\[]\\s*[\'"]?(?:module|classloader|protectiondomain)\\b|\\.classloader\\.|\\bclass\\.classloader', JT)

// base64 fragments of gadget and process class names at every 3-byte alignment
const words = ['runtime', 'processbuilder', 'clonetransformer', 'forclosure', 'instantiatefactory', 'instantiatetransformer', 'invokertransformer', 'prototypeclonefactory', 'prototypeserializationfactory', 'whileclosure', 'getproperty', 'fileoutputstream', 'fileinputstream', 'getruntime', 'classloader', 'templatesimpl', 'chainedtransformer', 'constanttransformer', 'objectinputstream', 'java.lang', 'javax.script', 'scriptengine', 'annotationinvocationhandler', 'java.rmi', 'unicastref']
const frags = new Set()
for (const w of words) {
  for (const v of [w, w[0].toUpperCase() + w.slice(1), w.toUpperCase()]) {
    for (let off = 0; off < 3; off++) {
      const b = Buffer.from('\0'.repeat(off) + v).toString('base64').replace(/=+$/, '')
      const startChars = off === 0 ? 0 : (off === 1 ? 2 : 3)
      const usable = Math.floor((off + v.length) / 3) * 4
      const frag = b.slice(startChars, usable)
      if (frag.length >= 8) frags.add(frag)
    }
  }
}
rule('pc-java-007', 'java', 'base64 fragments of Java gadget and process class names (encoded deserialization payloads)', 'phrase_match', ALL, { list: [...frags].sort(), options: { enforce_word_boundary: false } }, ['urlDecodeUni', 'removeNulls'])

// ---------- Generic (Node.js, Ruby, Perl, SSRF, prototype pollution, templates)
const GT = ['urlDecodeUni', 'htmlEntityDecode', 'jsDecode', 'removeNulls', 'lowercase']
re('pc-generic-001', 'generic', 'prototype pollution through __proto__ or constructor.prototype', ['keys', 'query', 'body', 'cookies', 'path'], '__proto__|\\bconstructor\\s*(?:\\.|\\[\\s*[\'"]?)\\s*prototype\\b', GT)
re('pc-generic-002', 'generic', 'Node.js code injection (child_process, process, Function constructor, serialized functions)', ALL, '\\brequire\\s*\\(\\s*[\'"`](?:child_process|fs|net|vm|os|http|dgram|cluster|worker_threads)[\'"`]|\\bchild_process\\s*[\'"`]?\\s*\\)?\\s*\\.\\s*(?:exec|spawn|fork|execfile)\\w*\\s*\\(\\s*[^)\\s]|\\bmainmodule\\s*\\.\\s*require\\b|\\bprocess\\s*\\.\\s*(?:mainmodule|binding|dlopen|env\\b|kill|exit|cwd)|\\bglobal\\s*\\.\\s*process|constructor\\s*\\.\\s*constructor|\\bconstructor\\s*\\(\\s*[\'"`]return|_\\$\\$nd_func\\$\\$_|__js_function|\\bstring\\s*\\.\\s*fromcharcode|\\beval\\s*\\(\\s*(?:string|atob|buffer|require)|\\bfunction\\s*\\(\\s*\\)\\s*\\{[^}]{0,200}(?:require|process|return\\s+this)|\\bbuffer\\s*\\.\\s*from\\s*\\([^)]*[\'"`]base64|\\b(?:spawn|spawnsync|execsync|execfilesync)\\s*\\(\\s*[^)\\s]', GT)
// Metadata endpoints anywhere; loopback aliases as the host of a value that is a URL (or the
// whole value, or after `=` / `@`), not in prose that mentions one; a `/digits` suffix is a CIDR.
re('pc-generic-003', 'generic', 'SSRF to cloud metadata endpoints or localhost aliases', ARGS, '(?:^|[/@\\s=])(?:169\\.254\\.169\\.254|metadata\\.google\\.internal|metadata\\.azure\\.com|100\\.100\\.100\\.200|fd00:ec2::254|instance-data)(?:[:/?#]|$)|(?:^\\s*|[@=])(?:[a-z][a-z0-9+.-]*:)?(?://(?:[^/@\\s]*@)?)?(?:localhost(?:4|6|\\.localdomain\\d?)?|ip6-localhost|ip6-loopback|0\\.0\\.0\\.0|\\[::1?\\]|127\\.0\\.0\\.1)(?:[:?#]|/(?:[^\\d]|$)|$)', ['urlDecodeUni', 'removeNulls', 'lowercase'])
re('pc-generic-004', 'generic', 'a URL whose host is an IP written in decimal, octal or hex to dodge filters', ALL, '(?:(?:https?|ftps?|gopher|dict|ldap):)?//(?:[^/@\\s]*@)?(?:0x[0-9a-f]{1,8}|0[0-7]{1,11}|\\d{8,10})(?:\\.(?:0x[0-9a-f]{1,2}|0[0-7]{1,3}|\\d{1,8})){0,3}(?:[:/?#]|$)', ['urlDecodeUni', 'removeNulls', 'lowercase'])
re('pc-generic-005', 'generic', 'Perl/Ruby code execution (@{[ ]}, system, backtick operators, Kernel methods)', ALL, '@\\{\\s*\\[|\\bcore::\\w+|\\b(?:kernel|io|open3|pty)\\s*\\.\\s*(?:exec|system|spawn|open|popen|popen3|capture\\w*)|\\b(?:instance_eval|class_eval|module_eval|instance_variable_set|const_get)\\b|\\bsend\\s*\\(\\s*:\\w+|%x[\\(\\[{]|\\bopen\\s*\\(\\s*[\'"]\\s*\\||\\bsystem\\s*\\(\\s*[\'"]|\\bqx\\s*[\\({/]', GT)
re('pc-generic-006', 'generic', 'server-side template injection probes and object walks', ALL, '\\{\\{[^}]*(?:__class__|__mro__|__subclasses__|__globals__|__builtins__|__init__|config\\.|self\\.|request\\.|lipsum|cycler|joiner|namespace|\\d\\s*[*+/-]\\s*\\d|\\|\\s*attr)|\\{%\\s*(?:if|for|import|include|set|raw|macro|load|debug|print|with|extends|block)\\b[^%]*%\\}|[$#]\\{\\s*\\d+\\s*[*+/-]\\s*\\d+\\s*\\}|<%=?\\s*[^%\\s][^%]*%>|\\{php\\}|\\{\\$smarty|#set\\s*\\(\\s*\\$|\\$\\{\\s*\\{', GT)
re('pc-generic-007', 'generic', 'a URL fetching internal or non-HTTP services through a redirect or scheme trick', ARGS, '^\\s*(?:https?|ftps?)://(?:[^/@\\s]*@)?(?:localhost|127\\.\\d+\\.\\d+\\.\\d+|10\\.\\d+\\.\\d+\\.\\d+|192\\.168\\.\\d+\\.\\d+|172\\.(?:1[6-9]|2\\d|3[01])\\.\\d+\\.\\d+|\\[(?:::1|::|fe80:[^\\]]*|fc[^\\]]*|fd[^\\]]*)\\]|[^/\\s]*\\.(?:internal|local|localhost|localdomain))(?:[:/?#]|$)', ['urlDecodeUni', 'removeNulls', 'lowercase'])

// ---------- NoSQL operator injection (MongoDB query operators where the app expects a value)
// APIs that accept Mongo-style filters on purpose (Strapi `filters[x][$eq]`, Parse `where`) exclude these per route.
const MONGO_OPS = 'ne|nin|eq|gt|gte|lt|lte|in|regex|where|expr|function|accumulator|exists|elemmatch|or|nor|and|not|all|size|type|mod|jsonschema|lookup|text|options|comment'
const NT = ['urlDecodeUni', 'removeNulls', 'lowercase']
re('pc-nosql-001', 'nosql', 'a MongoDB query operator as a key ({"$ne": ...}, user[$ne]=...)', ['keys'], `(?:^|\\[)\\s*\\$(?:${MONGO_OPS})\\s*(?:\\]|$)`, NT)
re('pc-nosql-002', 'nosql', 'a MongoDB operator object or $where JavaScript inside a value', [...ALL, 'files'], `\\{\\s*['"]?\\$(?:${MONGO_OPS})['"]?\\s*:|,\\s*['"]\\$(?:${MONGO_OPS})['"]\\s*:|\\[\\s*\\$(?:${MONGO_OPS})\\s*\\]\\s*=`, NT)
re('pc-nosql-003', 'nosql', 'server-side JavaScript in a $where clause (this.field, db.collection, tojson)', [...ARGS, 'files'], '^\\s*[\'"]?\\s*(?:\\|\\||&&|;|\\))\\s*(?:this\\.\\w+|db\\.\\w+|tojson\\s*\\(|return\\s|sleep\\s*\\(|true\\b|1\\s*==)|\\bthis\\.\\w+\\s*(?:==|!=|>|<|\\.match\\s*\\(|\\.length\\b)|\\bdb\\.(?:getcollectionnames|getcollection|\\w+\\.(?:find|insert|drop|remove|update)\\w*)\\s*\\(|\\bobject\\.keys\\s*\\(\\s*this\\b', NT)

// ---------- LDAP filter injection (closing the app's filter and opening an OR/AND of the attacker's)
const LT = ['urlDecodeUni', 'htmlEntityDecode', 'removeNulls', 'lowercase']
re('pc-ldap-001', 'ldap', 'LDAP filter break-out (*)(uid=*, )(|(, admin)(&), (objectClass=*))', [...ALL, 'files'], '\\*\\s*\\)+\\s*\\(\\s*[|&!]?\\s*\\(?\\s*[\\w.-]+\\s*[~<>]?=|\\)\\s*\\(\\s*[|&!]\\s*(?:\\(|\\)|$)|[\\w*]\\s*\\)+\\s*\\(\\s*[|&]\\s*\\)?\\s*$|\\(\\s*objectclass\\s*=|\\(\\s*[|&]\\s*\\(\\s*[\\w.-]+\\s*[~<>]?=\\s*\\*|^\\s*\\*\\s*\\)+\\s*(?:\\(|$|\\x00)|\\)\\s*\\)\\s*\\x00', LT)

// ---------- Server-side includes and Edge Side Includes
re('pc-ssi-001', 'ssi', 'a server-side include directive (<!--#exec, #include, #echo) or an ESI tag', [...ALL, 'files'], '<!--\\s*#\\s*(?:exec|include|echo|config|fsize|flastmod|printenv|set|if|elif|else|endif)\\b|<\\s*/?\\s*esi\\s*:\\s*(?:include|inline|vars|eval|try|attempt|except|choose|when|otherwise|remove|comment|assign|debug)\\b', LT)

// ---------- CRLF / header injection: a line break followed by a response header or status line
// Only headers that split a response (cookies, redirects, body framing) with a value of their
// shape, so multi-line text (commit messages, `Signed-off-by:` trailers) is not one.
const CRLF_HEADERS = 'set-cookie\\s*:\\s*[^=\\s;]+=|location\\s*:\\s*(?:https?:|//|/|javascript:)|content-type\\s*:\\s*[a-z]+/|content-length\\s*:\\s*\\d|transfer-encoding\\s*:|refresh\\s*:\\s*\\d|x-xss-protection\\s*:|access-control-allow-[a-z-]+\\s*:|content-security-policy\\s*:|x-[a-z0-9-]*(?:inject|crlf|header)[a-z0-9-]*\\s*:|http/\\d(?:\\.\\d)?\\s+\\d{3}\\b'
const CRLF_T = ['urlDecodeUni', 'removeNulls', 'lowercase']
re('pc-crlf-001', 'crlf', 'CR/LF followed by a response header or a second response (header injection, response splitting)', [...ALL, 'files'], `(?:[\\r\\n]|\\x{560a}|\\x{560d})[\\t ]*(?:${CRLF_HEADERS})`, CRLF_T)

const out = { version: '2.2', metadata: { rules_version: '1.0.0' }, rules }
writeFileSync(fileURLToPath(new URL('./portcullis.json', import.meta.url)), JSON.stringify(out, null, 2) + '\n')
console.log(rules.length, 'rules,', frags.size, 'base64 fragments')


using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'rdv' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'rdv'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'rdv' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour in output meant for people')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the signaling server')
            [CompletionResult]::new('keygen', 'keygen', [CompletionResultType]::ParameterValue, 'Make key pairs (EC, Ed25519 or RSA) as JWK or PEM')
            [CompletionResult]::new('fingerprint', 'fingerprint', [CompletionResultType]::ParameterValue, 'Print the peer IDs of keys, check them against a buddy list, or build one')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Make an access token for a server started with --auth-key, or check one')
            [CompletionResult]::new('peer', 'peer', [CompletionResultType]::ParameterValue, 'Join a room from the terminal: see and send every signaling message')
            [CompletionResult]::new('bench', 'bench', [CompletionResultType]::ParameterValue, 'Load-test a signaling server, or compare rdv with a raw relay floor')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rdv;serve' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from this TOML file, each under its flag''s name without the dashes (`max-connections = 20000`). Flags and RDV_* variables win over the file')
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address to listen on; port 0 picks a free port. The bound address is printed on stdout as one line: `listening ADDR`')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Serve TLS (wss:// and https://) with this PEM certificate chain; needs --tls-key. SIGHUP reloads the pair without dropping a connection')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert')
            [CompletionResult]::new('--max-message-size', '--max-message-size', [CompletionResultType]::ParameterName, 'Largest message accepted; a bigger one closes its connection with 1009')
            [CompletionResult]::new('--read-buffer', '--read-buffer', [CompletionResultType]::ParameterName, 'WebSocket read buffer per connection, allocated up front: small saves memory per idle peer (it grows to fit a larger message). Busy connections read ahead up to 16 KiB per system call whatever its size')
            [CompletionResult]::new('--ping-interval', '--ping-interval', [CompletionResultType]::ParameterName, 'Interval between the server''s WebSocket pings; a connection silent for two intervals is closed and its peer reported as left')
            [CompletionResult]::new('--register-timeout', '--register-timeout', [CompletionResultType]::ParameterName, 'How long a connection may stay unregistered before it is closed with 1008; also how long a client may take to send its whole HTTP request head')
            [CompletionResult]::new('--max-unregistered', '--max-unregistered', [CompletionResultType]::ParameterName, 'Connections not registered yet (request head arriving, or upgraded and waiting for `register`), counted from accept. When full, the oldest of them is closed to make room (1013 if upgraded), so idle sockets never lock out new clients or registered peers')
            [CompletionResult]::new('--message-timeout', '--message-timeout', [CompletionResultType]::ParameterName, 'How long one message may take to arrive whole, from its first frame to its last (a fragmented message, or one large frame); a slower one closes its connection (1008)')
            [CompletionResult]::new('--max-unfinished-bytes', '--max-unfinished-bytes', [CompletionResultType]::ParameterName, 'Bytes of unfinished messages (fragments not yet complete) held across the whole server; a connection that would go past it is closed with 1013')
            [CompletionResult]::new('--outbound-queue', '--outbound-queue', [CompletionResultType]::ParameterName, 'Messages queued for one connection before it counts as too slow and is closed with 1013')
            [CompletionResult]::new('--outbound-queue-bytes', '--outbound-queue-bytes', [CompletionResultType]::ParameterName, 'Bytes queued for one connection before it counts as too slow and is closed with 1013; with --outbound-queue this bounds the memory a stalled receiver can hold')
            [CompletionResult]::new('--max-outbound-bytes', '--max-outbound-bytes', [CompletionResultType]::ParameterName, 'Bytes queued to all connections together, from queued until the socket takes them. At the ceiling the slowest receivers (largest backlogs) are closed first with 1013')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Open WebSocket connections allowed at once; more are closed with 1013')
            [CompletionResult]::new('--max-peers-per-room', '--max-peers-per-room', [CompletionResultType]::ParameterName, 'Registered peers allowed in one room; more get `room-full`')
            [CompletionResult]::new('--rate-limit', '--rate-limit', [CompletionResultType]::ParameterName, 'Messages per second one connection may send on average')
            [CompletionResult]::new('--rate-burst', '--rate-burst', [CompletionResultType]::ParameterName, 'Messages one connection may send in a burst above the rate; a connection that keeps sending after a whole burst has been dropped is closed with 1008')
            [CompletionResult]::new('--resume-grace', '--resume-grace', [CompletionResultType]::ParameterName, 'How long a registered peer whose connection dropped without a close frame (a reset, a lost network, a keepalive timeout) keeps its place in the room: a `register` of the same peer ID within it resumes, unseen by the room, and gets the relays sent to it meanwhile (PROTOCOL §14). 0 turns it off: the room hears `peer-left` at once')
            [CompletionResult]::new('--drain-timeout', '--drain-timeout', [CompletionResultType]::ParameterName, 'Longest wait for connections to close on SIGINT/SIGTERM before exiting anyway')
            [CompletionResult]::new('--allow-list', '--allow-list', [CompletionResultType]::ParameterName, 'Only these peer IDs may register (a file of IDs, one per line, `#` comments; or a JSON buddy list `[{"id": …}]`). Others get `forbidden` and are closed with 1008')
            [CompletionResult]::new('--allow-origin', '--allow-origin', [CompletionResultType]::ParameterName, 'Browser origins allowed to connect (repeatable): exact, like https://app.example.com, or https://*.example.com for its subdomains. A browser upgrade from another origin gets 403. Without any, every origin is allowed')
            [CompletionResult]::new('--room-pattern', '--room-pattern', [CompletionResultType]::ParameterName, 'Room names must match this regular expression (whole name); others get 400 naming it')
            [CompletionResult]::new('--max-connections-per-ip', '--max-connections-per-ip', [CompletionResultType]::ParameterName, 'Open WebSocket connections allowed from one client address (an IPv6 /64 counts as one); more get 429 with Retry-After')
            [CompletionResult]::new('--connect-rate-per-ip', '--connect-rate-per-ip', [CompletionResultType]::ParameterName, 'Upgrades one client address may start per second (token bucket, a second''s worth at once); more get 429 with Retry-After')
            [CompletionResult]::new('--trusted-proxy', '--trusted-proxy', [CompletionResultType]::ParameterName, 'Proxies (repeatable CIDR, e.g. 10.0.0.0/8 or 127.0.0.1/32) whose --client-address-header names the client; from anyone else it is ignored')
            [CompletionResult]::new('--client-address-header', '--client-address-header', [CompletionResultType]::ParameterName, 'The one header your trusted proxy names the client in. It is read across all its lines from the right, past trusted proxies, to the first address that is not one; every other forwarding header is ignored, so a client cannot choose its address')
            [CompletionResult]::new('--proof', '--proof', [CompletionResultType]::ParameterName, 'Proof of possession (PROTOCOL §9): `off` keeps the original protocol byte for byte; `optional` and `required` send a challenge and mark peers verified or not')
            [CompletionResult]::new('--max-proof-checks', '--max-proof-checks', [CompletionResultType]::ParameterName, 'Proof-of-possession checks the whole server does per second, in units of one P-256, Ed25519 or RSA-2048 check (RSA-4096 counts 4, RSA-8192 16, and up to 4 times that for an exponent above 65537). Only proofs that pass every free check are charged. Past it, a register with a proof is closed with 1013 to retry later, so a flood of proofs cannot take the CPU')
            [CompletionResult]::new('--auth-key', '--auth-key', [CompletionResultType]::ParameterName, 'Require an access token (a JWT) with every register (PROTOCOL §13), signed by a key in this file (repeatable): a public JWK, a JWK Set, PEM public keys (ES256, ES384, EdDSA, RS256/PS256…), an `oct` JWK, or a secret on the first line (HS256). The algorithm comes from the key, never from the token. Reloaded on SIGHUP')
            [CompletionResult]::new('--auth-audience', '--auth-audience', [CompletionResultType]::ParameterName, 'With --auth-key: tokens must name one of these audiences in `aud` (repeatable)')
            [CompletionResult]::new('--auth-issuer', '--auth-issuer', [CompletionResultType]::ParameterName, 'With --auth-key: tokens must come from one of these issuers (`iss`, repeatable)')
            [CompletionResult]::new('--ice-server', '--ice-server', [CompletionResultType]::ParameterName, 'STUN or TURN server to hand peers in `welcome` (repeatable): stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp], turns:… (PROTOCOL §10). Without any, nothing changes on the wire')
            [CompletionResult]::new('--turn-secret-file', '--turn-secret-file', [CompletionResultType]::ParameterName, 'coturn''s static-auth-secret (the file''s first line): TURN URLs get time-limited credentials for each peer, EXPIRY:PEER_ID and base64(HMAC-SHA1(secret, username)). Read at start and on SIGHUP; never logged')
            [CompletionResult]::new('--turn-ttl', '--turn-ttl', [CompletionResultType]::ParameterName, 'How long TURN credentials are valid; peers get fresh ones (an `ice-servers` message) at 80 % of it')
            [CompletionResult]::new('--cluster', '--cluster', [CompletionResultType]::ParameterName, 'Run as one instance of a cluster: rooms span every instance connected to this Redis 7 (or Valkey), redis://HOST:PORT[/DB] or rediss:// for TLS, or to a Redis Cluster given by seed nodes, redis://HOST1:PORT1,HOST2:PORT2,… (docs/cluster.md). Without it the server is a single process that needs nothing else')
            [CompletionResult]::new('--cluster-password-file', '--cluster-password-file', [CompletionResultType]::ParameterName, 'The Redis password (the file''s first line), instead of putting it in --cluster''s URL')
            [CompletionResult]::new('--cluster-lease', '--cluster-lease', [CompletionResultType]::ParameterName, 'How long the members of an instance that stops without a goodbye (a crash, a lost host) stay in their rooms before the rest of the cluster announces them gone')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format on stderr; the level comes from `RDV_LOG` (e.g. `info`, `rdv=debug`)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour in output meant for people')
            [CompletionResult]::new('--check-config', '--check-config', [CompletionResultType]::ParameterName, 'Check the configuration (files readable, certificate matching its key, patterns), print every setting with where it came from, and exit: 0 if it is sound, else 1 with every problem')
            [CompletionResult]::new('--require-origin', '--require-origin', [CompletionResultType]::ParameterName, 'Refuse upgrades that send no Origin header (non-browser clients send none)')
            [CompletionResult]::new('--log-room-names', '--log-room-names', [CompletionResultType]::ParameterName, 'Write room names into the connection log; otherwise each room is logged as a short keyed hash (the same room gives the same hash while the server runs)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdv;keygen' {
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Key type')
            [CompletionResult]::new('--type', '--type', [CompletionResultType]::ParameterName, 'Key type')
            [CompletionResult]::new('--curve', '--curve', [CompletionResultType]::ParameterName, 'Curve for --type ec [default: P-256]')
            [CompletionResult]::new('--bits', '--bits', [CompletionResultType]::ParameterName, 'Modulus size for --type rsa [default: 3072]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: JWK (kid = --name, else the peer ID) or PEM (PKCS#8 private, SPKI public)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write the private key to FILE (mode 0600) instead of stdout')
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Write the private key to FILE (mode 0600) instead of stdout')
            [CompletionResult]::new('--public-out', '--public-out', [CompletionResultType]::ParameterName, 'Also write the public key to FILE')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A name for the key, written as its JWK `kid`: buddy lists made from the key (`rdv fingerprint --buddy-list`) and `rdv peer --buddies` show it [default: the peer ID]')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Make N key pairs into --out-dir: PEERID.jwk, PEERID.pub.jwk (or .pem) and buddies.json')
            [CompletionResult]::new('--out-dir', '--out-dir', [CompletionResultType]::ParameterName, 'Directory for --count (created if missing)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour in output meant for people')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print {"privateKey", "publicKey", "peerId"} on stdout as one line of JSON')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replace existing files')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Do not print the peer ID (or the batch summary) on stderr')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Do not print the peer ID (or the batch summary) on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdv;fingerprint' {
            [CompletionResult]::new('--encoding', '--encoding', [CompletionResultType]::ParameterName, 'How to print the digest: hex (default for peer-id) or base64url (default for rfc7638)')
            [CompletionResult]::new('--scheme', '--scheme', [CompletionResultType]::ParameterName, 'What to hash: the peer ID text of PROTOCOL §4, or the standard RFC 7638 JWK thumbprint (same members, sorted by name; never equal to the peer ID)')
            [CompletionResult]::new('--check', '--check', [CompletionResultType]::ParameterName, 'Exit 0 only if every key''s peer ID is on this buddy list (JSON, or one ID per line); prints `SOURCE: OK` or `SOURCE: NOT ON LIST` for each key')
            [CompletionResult]::new('--expect', '--expect', [CompletionResultType]::ParameterName, 'Exit 0 only if the single key''s digest (as printed) equals ID')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour in output meant for people')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON array instead of lines')
            [CompletionResult]::new('--explain', '--explain', [CompletionResultType]::ParameterName, 'Print the exact text that is hashed instead of the digest, to compare with a browser''s JSON.stringify output')
            [CompletionResult]::new('--buddy-list', '--buddy-list', [CompletionResultType]::ParameterName, 'Print a JSON buddy list [{"id", "name", "publicKey"}]; the name is the key''s kid (unless the kid is just the peer ID, as `rdv keygen` sets it without --name), else the file stem')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdv;token' {
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'The signing key (or, with --verify, the key or keys to check with)')
            [CompletionResult]::new('--room', '--room', [CompletionResultType]::ParameterName, 'A room the token grants (repeatable): an exact name, or a prefix ending in `*` (`game-*`; `*` alone grants every room). With --verify: check the token for it')
            [CompletionResult]::new('--peer', '--peer', [CompletionResultType]::ParameterName, 'Bind the token to this peer ID (`sub`): only that key may use it')
            [CompletionResult]::new('--for', '--for', [CompletionResultType]::ParameterName, 'Bind the token to the peer ID of the key in this file (public or private)')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'How long the token is valid')
            [CompletionResult]::new('--aud', '--aud', [CompletionResultType]::ParameterName, 'The audience (`aud`); with --verify, the one required')
            [CompletionResult]::new('--iss', '--iss', [CompletionResultType]::ParameterName, 'The issuer (`iss`); with --verify, the one required')
            [CompletionResult]::new('--max-peers', '--max-peers', [CompletionResultType]::ParameterName, 'The room''s size when the token''s holder is the first to join it (`max_peers`)')
            [CompletionResult]::new('--alg', '--alg', [CompletionResultType]::ParameterName, 'The signing algorithm, when the key allows several (RSA: RS256 by default, or PS256…; a secret: HS256, HS384 or HS512)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour in output meant for people')
            [CompletionResult]::new('--verify', '--verify', [CompletionResultType]::ParameterName, 'Check TOKEN instead of making one')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'With --verify: print JSON instead of lines')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdv;peer' {
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Private key to register with (JWK or PEM, e.g. from `rdv keygen`); without it an ephemeral P-256 key is made and its peer ID printed')
            [CompletionResult]::new('--buddies', '--buddies', [CompletionResultType]::ParameterName, 'Buddy list (JSON or one ID per line): peers are shown as buddies or unknown')
            [CompletionResult]::new('--ca', '--ca', [CompletionResultType]::ParameterName, 'Trust this CA (PEM) for wss:// instead of the system''s roots')
            [CompletionResult]::new('-H', '-H ', [CompletionResultType]::ParameterName, 'Extra HTTP header for the upgrade request, e.g. -H ''Authorization: Bearer x'' (repeatable)')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'Extra HTTP header for the upgrade request, e.g. -H ''Authorization: Bearer x'' (repeatable)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Give up after DURATION: exit 5 if conditions are unmet, 0 if none were given')
            [CompletionResult]::new('--wait-peers', '--wait-peers', [CompletionResultType]::ParameterName, 'Condition: at least N other peers are in the room')
            [CompletionResult]::new('--expect', '--expect', [CompletionResultType]::ParameterName, 'Condition: a message of TYPE arrived (repeatable: each type must arrive)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Condition: a message whose member at PATH equals VALUE arrived, e.g. .sdp.type=answer (repeatable: each must match some message)')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Condition: N messages arrived (all types, welcome included)')
            [CompletionResult]::new('--linger', '--linger', [CompletionResultType]::ParameterName, 'After stdin ends, stay DURATION for replies, then leave')
            [CompletionResult]::new('-x', '-x', [CompletionResultType]::ParameterName, 'Message to send after registering (repeatable; before stdin lines)')
            [CompletionResult]::new('--send', '--send', [CompletionResultType]::ParameterName, 'Message to send after registering (repeatable; before stdin lines)')
            [CompletionResult]::new('--send-file', '--send-file', [CompletionResultType]::ParameterName, 'Send each line of FILE after registering (after -x, before stdin lines)')
            [CompletionResult]::new('--send-after-peers', '--send-after-peers', [CompletionResultType]::ParameterName, 'Hold every outgoing message (-x, --send-file, stdin) until at least N other peers are in the room, so an offer is not sent before its callee has arrived')
            [CompletionResult]::new('--delay', '--delay', [CompletionResultType]::ParameterName, 'Pause between the messages of -x and --send-file')
            [CompletionResult]::new('--answer-template', '--answer-template', [CompletionResultType]::ParameterName, 'JSON (or @FILE) merged into each automatic answer; `to` and `type` are filled in [default: a placeholder SDP]')
            [CompletionResult]::new('--connect', '--connect', [CompletionResultType]::ParameterName, 'With --webrtc: offer a connection to PEER (a peer ID or a unique prefix of one) once it is in the room; `*` offers to every peer in the room and every newcomer')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Access token to register with, for a server started with --auth-key (PROTOCOL §13; `rdv token` makes one). Prefer RDV_TOKEN: a flag''s value shows in the process list')
            [CompletionResult]::new('--challenge-wait', '--challenge-wait', [CompletionResultType]::ParameterName, 'How long to wait for a server''s challenge before registering without one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour in output meant for people')
            [CompletionResult]::new('--only-buddies', '--only-buddies', [CompletionResultType]::ParameterName, 'Refuse to send to peers that are not on --buddies, and drop offers and answers from buddies that are not validly signed (PROTOCOL §12)')
            [CompletionResult]::new('--require-signed', '--require-signed', [CompletionResultType]::ParameterName, 'Drop offers and answers whose signature is missing or invalid (PROTOCOL §12): reported on stderr, never printed, answered or counted by --expect and --until')
            [CompletionResult]::new('--no-sign', '--no-sign', [CompletionResultType]::ParameterName, 'Do not sign the offers and answers this peer sends (they are signed with its key by default, PROTOCOL §12)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Accept any TLS certificate (for tests against self-signed servers)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Script mode even on a terminal')
            [CompletionResult]::new('--exit-on-eof', '--exit-on-eof', [CompletionResultType]::ParameterName, 'Leave once stdin has ended, everything was sent and the server has answered it all (a ping after the last message, and its pong): a refusal still makes the exit code 10')
            [CompletionResult]::new('--answer-offers', '--answer-offers', [CompletionResultType]::ParameterName, 'Answer every offer, as a simulated callee (see --answer-template)')
            [CompletionResult]::new('--reconnect', '--reconnect', [CompletionResultType]::ParameterName, 'On a dropped connection, back off and reconnect with the same key (within the server''s --resume-grace the room does not see us go). On by default interactively; in script mode a drop exits 8 unless this is given')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Never reconnect: a dropped connection ends the run (exit 8), interactive or not')
            [CompletionResult]::new('--ice-check', '--ice-check', [CompletionResultType]::ParameterName, 'After the welcome, check every ICE server it lists — a STUN Binding request, a TURN Allocate with the minted credential (UDP) — report each (reachable, allocation, relayed or reflexive address, round trip; NDJSON `ice-check` lines in script mode) and leave: 0 if all answered, 1 if any failed or none could be tried (TLS and TCP URLs are listed as skipped)')
            [CompletionResult]::new('--webrtc', '--webrtc', [CompletionResultType]::ParameterName, 'Open real WebRTC peer connections (a data channel, as rdv.js''s): answer every offer, and offer to --connect''s peer. Reports ICE, the selected candidate pair (type, addresses, round trip), the channel''s state and what arrives on it (NDJSON `webrtc` lines in script mode); stdin lines (or lines typed) go over the channel')
            [CompletionResult]::new('--relay-only', '--relay-only', [CompletionResultType]::ParameterName, 'With --webrtc: offer only candidates relayed through the TURN servers the welcome lists (with the credential the server minted), to test that a peer can be reached through TURN alone')
            [CompletionResult]::new('--no-proof', '--no-proof', [CompletionResultType]::ParameterName, 'Never answer a proof-of-possession challenge (to test a server''s `required` mode)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdv;bench' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour in output meant for people')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('relay', 'relay', [CompletionResultType]::ParameterValue, 'Pairs relaying ~1 KiB offers and answers: messages/s, one-way latency, loss')
            [CompletionResult]::new('join', 'join', [CompletionResultType]::ParameterValue, 'N peers register over R rooms: joins/s, register→welcome latency, server memory')
            [CompletionResult]::new('fanout', 'fanout', [CompletionResultType]::ParameterValue, 'K peers join one room in turn: peer-joined events/s and when the last join is seen')
            [CompletionResult]::new('churn', 'churn', [CompletionResultType]::ParameterValue, 'Connect/register/leave cycles at a bounded rate: cycles/s and whether memory returns')
            [CompletionResult]::new('compare', 'compare', [CompletionResultType]::ParameterValue, 'rdv serve against the raw relay floor, alternating runs; medians and ratios')
            [CompletionResult]::new('compare-join', 'compare-join', [CompletionResultType]::ParameterValue, 'rdv serve against the raw floor, bare and with presence, for joins; medians and ratios')
            [CompletionResult]::new('floor', 'floor', [CompletionResultType]::ParameterValue, 'Run the raw relay floor server (what `compare` measures against)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rdv;bench;relay' {
            [CompletionResult]::new('--source-ips', '--source-ips', [CompletionResultType]::ParameterName, 'Spread connections over 127.0.0.1..=127.0.0.N when ephemeral ports run short')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Generator threads (1 leaves the other cores to the server)')
            [CompletionResult]::new('--other-instance', '--other-instance', [CompletionResultType]::ParameterName, 'Another instance of the same cluster (`rdv serve --cluster`): the second peer of every pair (relay) and every other joiner (join) connect there, so every relay and every presence event crosses instances')
            [CompletionResult]::new('--pairs', '--pairs', [CompletionResultType]::ParameterName, 'Caller/callee pairs')
            [CompletionResult]::new('--in-flight', '--in-flight', [CompletionResultType]::ParameterName, 'Offers in flight per pair')
            [CompletionResult]::new('--payload', '--payload', [CompletionResultType]::ParameterName, 'Size of each relayed message as sent, exactly (the same on both wires in `compare`)')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Measured time, after the warm-up')
            [CompletionResult]::new('--warmup', '--warmup', [CompletionResultType]::ParameterName, 'Time before measuring')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour in output meant for people')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object instead of text')
            [CompletionResult]::new('--one-room', '--one-room', [CompletionResultType]::ParameterName, 'All pairs in one room instead of a room each')
            [CompletionResult]::new('--floor', '--floor', [CompletionResultType]::ParameterName, 'Speak the raw floor''s TARGET|payload instead of the protocol')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdv;bench;join' {
            [CompletionResult]::new('--source-ips', '--source-ips', [CompletionResultType]::ParameterName, 'Spread connections over 127.0.0.1..=127.0.0.N when ephemeral ports run short')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Generator threads (1 leaves the other cores to the server)')
            [CompletionResult]::new('--other-instance', '--other-instance', [CompletionResultType]::ParameterName, 'Another instance of the same cluster (`rdv serve --cluster`): the second peer of every pair (relay) and every other joiner (join) connect there, so every relay and every presence event crosses instances')
            [CompletionResult]::new('--peers', '--peers', [CompletionResultType]::ParameterName, 'peers')
            [CompletionResult]::new('--rooms', '--rooms', [CompletionResultType]::ParameterName, 'rooms')
            [CompletionResult]::new('--concurrency', '--concurrency', [CompletionResultType]::ParameterName, 'Registrations in progress at once')
            [CompletionResult]::new('--server-pid', '--server-pid', [CompletionResultType]::ParameterName, 'The server''s process ID, to sample its resident memory and the CPU time its joins took')
            [CompletionResult]::new('--hold', '--hold', [CompletionResultType]::ParameterName, 'Keep the peers connected (answering pings) this long, then sample again')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour in output meant for people')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object instead of text')
            [CompletionResult]::new('--floor', '--floor', [CompletionResultType]::ParameterName, 'Join the raw floor instead (connect, upgrade, wait for its `ready`): the least a join can cost on this stack and machine, to read rdv''s joins/s against')
            [CompletionResult]::new('--floor-presence', '--floor-presence', [CompletionResultType]::ParameterName, 'With --floor: the floor keeps the rooms too, answers with the members and tells each member of every arrival and departure. The writes presence costs, without rdv''s parsing and checks, to read rdv''s joins/s in rooms of more than one against')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdv;bench;fanout' {
            [CompletionResult]::new('--source-ips', '--source-ips', [CompletionResultType]::ParameterName, 'Spread connections over 127.0.0.1..=127.0.0.N when ephemeral ports run short')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Generator threads (1 leaves the other cores to the server)')
            [CompletionResult]::new('--other-instance', '--other-instance', [CompletionResultType]::ParameterName, 'Another instance of the same cluster (`rdv serve --cluster`): the second peer of every pair (relay) and every other joiner (join) connect there, so every relay and every presence event crosses instances')
            [CompletionResult]::new('--peers', '--peers', [CompletionResultType]::ParameterName, 'peers')
            [CompletionResult]::new('--server-pid', '--server-pid', [CompletionResultType]::ParameterName, 'server-pid')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour in output meant for people')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object instead of text')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdv;bench;churn' {
            [CompletionResult]::new('--source-ips', '--source-ips', [CompletionResultType]::ParameterName, 'Spread connections over 127.0.0.1..=127.0.0.N when ephemeral ports run short')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Generator threads (1 leaves the other cores to the server)')
            [CompletionResult]::new('--other-instance', '--other-instance', [CompletionResultType]::ParameterName, 'Another instance of the same cluster (`rdv serve --cluster`): the second peer of every pair (relay) and every other joiner (join) connect there, so every relay and every presence event crosses instances')
            [CompletionResult]::new('--warmup', '--warmup', [CompletionResultType]::ParameterName, 'Cycles before the memory baseline is taken (one-time growth is not a leak)')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Measured cycling time, after the warm-up')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'Cycles started per second')
            [CompletionResult]::new('--concurrency', '--concurrency', [CompletionResultType]::ParameterName, 'concurrency')
            [CompletionResult]::new('--server-pid', '--server-pid', [CompletionResultType]::ParameterName, 'server-pid')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour in output meant for people')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object instead of text')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdv;bench;compare' {
            [CompletionResult]::new('--pairs', '--pairs', [CompletionResultType]::ParameterName, 'Caller/callee pairs')
            [CompletionResult]::new('--in-flight', '--in-flight', [CompletionResultType]::ParameterName, 'Offers in flight per pair')
            [CompletionResult]::new('--payload', '--payload', [CompletionResultType]::ParameterName, 'Size of each relayed message as sent, exactly (the same on both wires in `compare`)')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Measured time, after the warm-up')
            [CompletionResult]::new('--warmup', '--warmup', [CompletionResultType]::ParameterName, 'Time before measuring')
            [CompletionResult]::new('--runs', '--runs', [CompletionResultType]::ParameterName, 'Runs of each (the median is reported)')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'threads')
            [CompletionResult]::new('--read-buffer', '--read-buffer', [CompletionResultType]::ParameterName, 'Read buffer of both servers (rdv serve''s --read-buffer)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour in output meant for people')
            [CompletionResult]::new('--one-room', '--one-room', [CompletionResultType]::ParameterName, 'All pairs in one room instead of a room each')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'json')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdv;bench;compare-join' {
            [CompletionResult]::new('--peers', '--peers', [CompletionResultType]::ParameterName, 'peers')
            [CompletionResult]::new('--rooms', '--rooms', [CompletionResultType]::ParameterName, 'Rooms the peers are spread over (5000 peers in 500 rooms: rooms of 10)')
            [CompletionResult]::new('--concurrency', '--concurrency', [CompletionResultType]::ParameterName, 'Registrations in progress at once')
            [CompletionResult]::new('--runs', '--runs', [CompletionResultType]::ParameterName, 'Runs of each (the median is reported)')
            [CompletionResult]::new('--source-ips', '--source-ips', [CompletionResultType]::ParameterName, 'Spread connections over 127.0.0.1..=127.0.0.N: every run''s sockets linger in TIME_WAIT, and one address has ports for about 28,000 of them')
            [CompletionResult]::new('--read-buffer', '--read-buffer', [CompletionResultType]::ParameterName, 'Read buffer of both servers (rdv serve''s --read-buffer)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour in output meant for people')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'json')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdv;bench;floor' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'listen')
            [CompletionResult]::new('--read-buffer', '--read-buffer', [CompletionResultType]::ParameterName, 'read-buffer')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour in output meant for people')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdv;bench;help' {
            [CompletionResult]::new('relay', 'relay', [CompletionResultType]::ParameterValue, 'Pairs relaying ~1 KiB offers and answers: messages/s, one-way latency, loss')
            [CompletionResult]::new('join', 'join', [CompletionResultType]::ParameterValue, 'N peers register over R rooms: joins/s, register→welcome latency, server memory')
            [CompletionResult]::new('fanout', 'fanout', [CompletionResultType]::ParameterValue, 'K peers join one room in turn: peer-joined events/s and when the last join is seen')
            [CompletionResult]::new('churn', 'churn', [CompletionResultType]::ParameterValue, 'Connect/register/leave cycles at a bounded rate: cycles/s and whether memory returns')
            [CompletionResult]::new('compare', 'compare', [CompletionResultType]::ParameterValue, 'rdv serve against the raw relay floor, alternating runs; medians and ratios')
            [CompletionResult]::new('compare-join', 'compare-join', [CompletionResultType]::ParameterValue, 'rdv serve against the raw floor, bare and with presence, for joins; medians and ratios')
            [CompletionResult]::new('floor', 'floor', [CompletionResultType]::ParameterValue, 'Run the raw relay floor server (what `compare` measures against)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rdv;bench;help;relay' {
            break
        }
        'rdv;bench;help;join' {
            break
        }
        'rdv;bench;help;fanout' {
            break
        }
        'rdv;bench;help;churn' {
            break
        }
        'rdv;bench;help;compare' {
            break
        }
        'rdv;bench;help;compare-join' {
            break
        }
        'rdv;bench;help;floor' {
            break
        }
        'rdv;bench;help;help' {
            break
        }
        'rdv;completions' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour in output meant for people')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdv;help' {
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the signaling server')
            [CompletionResult]::new('keygen', 'keygen', [CompletionResultType]::ParameterValue, 'Make key pairs (EC, Ed25519 or RSA) as JWK or PEM')
            [CompletionResult]::new('fingerprint', 'fingerprint', [CompletionResultType]::ParameterValue, 'Print the peer IDs of keys, check them against a buddy list, or build one')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Make an access token for a server started with --auth-key, or check one')
            [CompletionResult]::new('peer', 'peer', [CompletionResultType]::ParameterValue, 'Join a room from the terminal: see and send every signaling message')
            [CompletionResult]::new('bench', 'bench', [CompletionResultType]::ParameterValue, 'Load-test a signaling server, or compare rdv with a raw relay floor')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rdv;help;serve' {
            break
        }
        'rdv;help;keygen' {
            break
        }
        'rdv;help;fingerprint' {
            break
        }
        'rdv;help;token' {
            break
        }
        'rdv;help;peer' {
            break
        }
        'rdv;help;bench' {
            [CompletionResult]::new('relay', 'relay', [CompletionResultType]::ParameterValue, 'Pairs relaying ~1 KiB offers and answers: messages/s, one-way latency, loss')
            [CompletionResult]::new('join', 'join', [CompletionResultType]::ParameterValue, 'N peers register over R rooms: joins/s, register→welcome latency, server memory')
            [CompletionResult]::new('fanout', 'fanout', [CompletionResultType]::ParameterValue, 'K peers join one room in turn: peer-joined events/s and when the last join is seen')
            [CompletionResult]::new('churn', 'churn', [CompletionResultType]::ParameterValue, 'Connect/register/leave cycles at a bounded rate: cycles/s and whether memory returns')
            [CompletionResult]::new('compare', 'compare', [CompletionResultType]::ParameterValue, 'rdv serve against the raw relay floor, alternating runs; medians and ratios')
            [CompletionResult]::new('compare-join', 'compare-join', [CompletionResultType]::ParameterValue, 'rdv serve against the raw floor, bare and with presence, for joins; medians and ratios')
            [CompletionResult]::new('floor', 'floor', [CompletionResultType]::ParameterValue, 'Run the raw relay floor server (what `compare` measures against)')
            break
        }
        'rdv;help;bench;relay' {
            break
        }
        'rdv;help;bench;join' {
            break
        }
        'rdv;help;bench;fanout' {
            break
        }
        'rdv;help;bench;churn' {
            break
        }
        'rdv;help;bench;compare' {
            break
        }
        'rdv;help;bench;compare-join' {
            break
        }
        'rdv;help;bench;floor' {
            break
        }
        'rdv;help;completions' {
            break
        }
        'rdv;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}

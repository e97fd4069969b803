
use builtin;
use str;

set edit:completion:arg-completer[rdv] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'rdv'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'rdv'= {
            cand --color 'When to use colour in output meant for people'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand serve 'Run the signaling server'
            cand keygen 'Make key pairs (EC, Ed25519 or RSA) as JWK or PEM'
            cand fingerprint 'Print the peer IDs of keys, check them against a buddy list, or build one'
            cand token 'Make an access token for a server started with --auth-key, or check one'
            cand peer 'Join a room from the terminal: see and send every signaling message'
            cand bench 'Load-test a signaling server, or compare rdv with a raw relay floor'
            cand completions 'Print a shell completion script to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rdv;serve'= {
            cand --config 'Read settings from this TOML file, each under its flag''s name without the dashes (`max-connections = 20000`). Flags and RDV_* variables win over the file'
            cand --listen 'Address to listen on; port 0 picks a free port. The bound address is printed on stdout as one line: `listening ADDR`'
            cand --tls-cert 'Serve TLS (wss:// and https://) with this PEM certificate chain; needs --tls-key. SIGHUP reloads the pair without dropping a connection'
            cand --tls-key 'The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert'
            cand --max-message-size 'Largest message accepted; a bigger one closes its connection with 1009'
            cand --read-buffer 'WebSocket read buffer per connection, allocated up front: small saves memory per idle peer (it grows to fit a larger message). Busy connections read ahead up to 16 KiB per system call whatever its size'
            cand --ping-interval 'Interval between the server''s WebSocket pings; a connection silent for two intervals is closed and its peer reported as left'
            cand --register-timeout 'How long a connection may stay unregistered before it is closed with 1008; also how long a client may take to send its whole HTTP request head'
            cand --max-unregistered 'Connections not registered yet (request head arriving, or upgraded and waiting for `register`), counted from accept. When full, the oldest of them is closed to make room (1013 if upgraded), so idle sockets never lock out new clients or registered peers'
            cand --message-timeout 'How long one message may take to arrive whole, from its first frame to its last (a fragmented message, or one large frame); a slower one closes its connection (1008)'
            cand --max-unfinished-bytes 'Bytes of unfinished messages (fragments not yet complete) held across the whole server; a connection that would go past it is closed with 1013'
            cand --outbound-queue 'Messages queued for one connection before it counts as too slow and is closed with 1013'
            cand --outbound-queue-bytes 'Bytes queued for one connection before it counts as too slow and is closed with 1013; with --outbound-queue this bounds the memory a stalled receiver can hold'
            cand --max-outbound-bytes 'Bytes queued to all connections together, from queued until the socket takes them. At the ceiling the slowest receivers (largest backlogs) are closed first with 1013'
            cand --max-connections 'Open WebSocket connections allowed at once; more are closed with 1013'
            cand --max-peers-per-room 'Registered peers allowed in one room; more get `room-full`'
            cand --rate-limit 'Messages per second one connection may send on average'
            cand --rate-burst 'Messages one connection may send in a burst above the rate; a connection that keeps sending after a whole burst has been dropped is closed with 1008'
            cand --resume-grace 'How long a registered peer whose connection dropped without a close frame (a reset, a lost network, a keepalive timeout) keeps its place in the room: a `register` of the same peer ID within it resumes, unseen by the room, and gets the relays sent to it meanwhile (PROTOCOL §14). 0 turns it off: the room hears `peer-left` at once'
            cand --drain-timeout 'Longest wait for connections to close on SIGINT/SIGTERM before exiting anyway'
            cand --allow-list 'Only these peer IDs may register (a file of IDs, one per line, `#` comments; or a JSON buddy list `[{"id": …}]`). Others get `forbidden` and are closed with 1008'
            cand --allow-origin 'Browser origins allowed to connect (repeatable): exact, like https://app.example.com, or https://*.example.com for its subdomains. A browser upgrade from another origin gets 403. Without any, every origin is allowed'
            cand --room-pattern 'Room names must match this regular expression (whole name); others get 400 naming it'
            cand --max-connections-per-ip 'Open WebSocket connections allowed from one client address (an IPv6 /64 counts as one); more get 429 with Retry-After'
            cand --connect-rate-per-ip 'Upgrades one client address may start per second (token bucket, a second''s worth at once); more get 429 with Retry-After'
            cand --trusted-proxy 'Proxies (repeatable CIDR, e.g. 10.0.0.0/8 or 127.0.0.1/32) whose --client-address-header names the client; from anyone else it is ignored'
            cand --client-address-header 'The one header your trusted proxy names the client in. It is read across all its lines from the right, past trusted proxies, to the first address that is not one; every other forwarding header is ignored, so a client cannot choose its address'
            cand --proof 'Proof of possession (PROTOCOL §9): `off` keeps the original protocol byte for byte; `optional` and `required` send a challenge and mark peers verified or not'
            cand --max-proof-checks 'Proof-of-possession checks the whole server does per second, in units of one P-256, Ed25519 or RSA-2048 check (RSA-4096 counts 4, RSA-8192 16, and up to 4 times that for an exponent above 65537). Only proofs that pass every free check are charged. Past it, a register with a proof is closed with 1013 to retry later, so a flood of proofs cannot take the CPU'
            cand --auth-key 'Require an access token (a JWT) with every register (PROTOCOL §13), signed by a key in this file (repeatable): a public JWK, a JWK Set, PEM public keys (ES256, ES384, EdDSA, RS256/PS256…), an `oct` JWK, or a secret on the first line (HS256). The algorithm comes from the key, never from the token. Reloaded on SIGHUP'
            cand --auth-audience 'With --auth-key: tokens must name one of these audiences in `aud` (repeatable)'
            cand --auth-issuer 'With --auth-key: tokens must come from one of these issuers (`iss`, repeatable)'
            cand --ice-server 'STUN or TURN server to hand peers in `welcome` (repeatable): stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp], turns:… (PROTOCOL §10). Without any, nothing changes on the wire'
            cand --turn-secret-file 'coturn''s static-auth-secret (the file''s first line): TURN URLs get time-limited credentials for each peer, EXPIRY:PEER_ID and base64(HMAC-SHA1(secret, username)). Read at start and on SIGHUP; never logged'
            cand --turn-ttl 'How long TURN credentials are valid; peers get fresh ones (an `ice-servers` message) at 80 % of it'
            cand --cluster 'Run as one instance of a cluster: rooms span every instance connected to this Redis 7 (or Valkey), redis://HOST:PORT[/DB] or rediss:// for TLS, or to a Redis Cluster given by seed nodes, redis://HOST1:PORT1,HOST2:PORT2,… (docs/cluster.md). Without it the server is a single process that needs nothing else'
            cand --cluster-password-file 'The Redis password (the file''s first line), instead of putting it in --cluster''s URL'
            cand --cluster-lease 'How long the members of an instance that stops without a goodbye (a crash, a lost host) stay in their rooms before the rest of the cluster announces them gone'
            cand --log-format 'Log format on stderr; the level comes from `RDV_LOG` (e.g. `info`, `rdv=debug`)'
            cand --color 'When to use colour in output meant for people'
            cand --check-config 'Check the configuration (files readable, certificate matching its key, patterns), print every setting with where it came from, and exit: 0 if it is sound, else 1 with every problem'
            cand --require-origin 'Refuse upgrades that send no Origin header (non-browser clients send none)'
            cand --log-room-names 'Write room names into the connection log; otherwise each room is logged as a short keyed hash (the same room gives the same hash while the server runs)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdv;keygen'= {
            cand -t 'Key type'
            cand --type 'Key type'
            cand --curve 'Curve for --type ec [default: P-256]'
            cand --bits 'Modulus size for --type rsa [default: 3072]'
            cand --format 'Output format: JWK (kid = --name, else the peer ID) or PEM (PKCS#8 private, SPKI public)'
            cand -o 'Write the private key to FILE (mode 0600) instead of stdout'
            cand --out 'Write the private key to FILE (mode 0600) instead of stdout'
            cand --public-out 'Also write the public key to FILE'
            cand --name 'A name for the key, written as its JWK `kid`: buddy lists made from the key (`rdv fingerprint --buddy-list`) and `rdv peer --buddies` show it [default: the peer ID]'
            cand --count 'Make N key pairs into --out-dir: PEERID.jwk, PEERID.pub.jwk (or .pem) and buddies.json'
            cand --out-dir 'Directory for --count (created if missing)'
            cand --color 'When to use colour in output meant for people'
            cand --json 'Print {"privateKey", "publicKey", "peerId"} on stdout as one line of JSON'
            cand --force 'Replace existing files'
            cand -q 'Do not print the peer ID (or the batch summary) on stderr'
            cand --quiet 'Do not print the peer ID (or the batch summary) on stderr'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdv;fingerprint'= {
            cand --encoding 'How to print the digest: hex (default for peer-id) or base64url (default for rfc7638)'
            cand --scheme 'What to hash: the peer ID text of PROTOCOL §4, or the standard RFC 7638 JWK thumbprint (same members, sorted by name; never equal to the peer ID)'
            cand --check 'Exit 0 only if every key''s peer ID is on this buddy list (JSON, or one ID per line); prints `SOURCE: OK` or `SOURCE: NOT ON LIST` for each key'
            cand --expect 'Exit 0 only if the single key''s digest (as printed) equals ID'
            cand --color 'When to use colour in output meant for people'
            cand --json 'Print a JSON array instead of lines'
            cand --explain 'Print the exact text that is hashed instead of the digest, to compare with a browser''s JSON.stringify output'
            cand --buddy-list 'Print a JSON buddy list [{"id", "name", "publicKey"}]; the name is the key''s kid (unless the kid is just the peer ID, as `rdv keygen` sets it without --name), else the file stem'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdv;token'= {
            cand --key 'The signing key (or, with --verify, the key or keys to check with)'
            cand --room 'A room the token grants (repeatable): an exact name, or a prefix ending in `*` (`game-*`; `*` alone grants every room). With --verify: check the token for it'
            cand --peer 'Bind the token to this peer ID (`sub`): only that key may use it'
            cand --for 'Bind the token to the peer ID of the key in this file (public or private)'
            cand --ttl 'How long the token is valid'
            cand --aud 'The audience (`aud`); with --verify, the one required'
            cand --iss 'The issuer (`iss`); with --verify, the one required'
            cand --max-peers 'The room''s size when the token''s holder is the first to join it (`max_peers`)'
            cand --alg 'The signing algorithm, when the key allows several (RSA: RS256 by default, or PS256…; a secret: HS256, HS384 or HS512)'
            cand --color 'When to use colour in output meant for people'
            cand --verify 'Check TOKEN instead of making one'
            cand --json 'With --verify: print JSON instead of lines'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdv;peer'= {
            cand --key 'Private key to register with (JWK or PEM, e.g. from `rdv keygen`); without it an ephemeral P-256 key is made and its peer ID printed'
            cand --buddies 'Buddy list (JSON or one ID per line): peers are shown as buddies or unknown'
            cand --ca 'Trust this CA (PEM) for wss:// instead of the system''s roots'
            cand -H 'Extra HTTP header for the upgrade request, e.g. -H ''Authorization: Bearer x'' (repeatable)'
            cand --header 'Extra HTTP header for the upgrade request, e.g. -H ''Authorization: Bearer x'' (repeatable)'
            cand --timeout 'Give up after DURATION: exit 5 if conditions are unmet, 0 if none were given'
            cand --wait-peers 'Condition: at least N other peers are in the room'
            cand --expect 'Condition: a message of TYPE arrived (repeatable: each type must arrive)'
            cand --until 'Condition: a message whose member at PATH equals VALUE arrived, e.g. .sdp.type=answer (repeatable: each must match some message)'
            cand --count 'Condition: N messages arrived (all types, welcome included)'
            cand --linger 'After stdin ends, stay DURATION for replies, then leave'
            cand -x 'Message to send after registering (repeatable; before stdin lines)'
            cand --send 'Message to send after registering (repeatable; before stdin lines)'
            cand --send-file 'Send each line of FILE after registering (after -x, before stdin lines)'
            cand --send-after-peers 'Hold every outgoing message (-x, --send-file, stdin) until at least N other peers are in the room, so an offer is not sent before its callee has arrived'
            cand --delay 'Pause between the messages of -x and --send-file'
            cand --answer-template 'JSON (or @FILE) merged into each automatic answer; `to` and `type` are filled in [default: a placeholder SDP]'
            cand --connect 'With --webrtc: offer a connection to PEER (a peer ID or a unique prefix of one) once it is in the room; `*` offers to every peer in the room and every newcomer'
            cand --token 'Access token to register with, for a server started with --auth-key (PROTOCOL §13; `rdv token` makes one). Prefer RDV_TOKEN: a flag''s value shows in the process list'
            cand --challenge-wait 'How long to wait for a server''s challenge before registering without one'
            cand --color 'When to use colour in output meant for people'
            cand --only-buddies 'Refuse to send to peers that are not on --buddies, and drop offers and answers from buddies that are not validly signed (PROTOCOL §12)'
            cand --require-signed 'Drop offers and answers whose signature is missing or invalid (PROTOCOL §12): reported on stderr, never printed, answered or counted by --expect and --until'
            cand --no-sign 'Do not sign the offers and answers this peer sends (they are signed with its key by default, PROTOCOL §12)'
            cand --insecure 'Accept any TLS certificate (for tests against self-signed servers)'
            cand --json 'Script mode even on a terminal'
            cand --exit-on-eof 'Leave once stdin has ended, everything was sent and the server has answered it all (a ping after the last message, and its pong): a refusal still makes the exit code 10'
            cand --answer-offers 'Answer every offer, as a simulated callee (see --answer-template)'
            cand --reconnect 'On a dropped connection, back off and reconnect with the same key (within the server''s --resume-grace the room does not see us go). On by default interactively; in script mode a drop exits 8 unless this is given'
            cand --no-reconnect 'Never reconnect: a dropped connection ends the run (exit 8), interactive or not'
            cand --ice-check 'After the welcome, check every ICE server it lists — a STUN Binding request, a TURN Allocate with the minted credential (UDP) — report each (reachable, allocation, relayed or reflexive address, round trip; NDJSON `ice-check` lines in script mode) and leave: 0 if all answered, 1 if any failed or none could be tried (TLS and TCP URLs are listed as skipped)'
            cand --webrtc 'Open real WebRTC peer connections (a data channel, as rdv.js''s): answer every offer, and offer to --connect''s peer. Reports ICE, the selected candidate pair (type, addresses, round trip), the channel''s state and what arrives on it (NDJSON `webrtc` lines in script mode); stdin lines (or lines typed) go over the channel'
            cand --relay-only 'With --webrtc: offer only candidates relayed through the TURN servers the welcome lists (with the credential the server minted), to test that a peer can be reached through TURN alone'
            cand --no-proof 'Never answer a proof-of-possession challenge (to test a server''s `required` mode)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdv;bench'= {
            cand --color 'When to use colour in output meant for people'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand relay 'Pairs relaying ~1 KiB offers and answers: messages/s, one-way latency, loss'
            cand join 'N peers register over R rooms: joins/s, register→welcome latency, server memory'
            cand fanout 'K peers join one room in turn: peer-joined events/s and when the last join is seen'
            cand churn 'Connect/register/leave cycles at a bounded rate: cycles/s and whether memory returns'
            cand compare 'rdv serve against the raw relay floor, alternating runs; medians and ratios'
            cand compare-join 'rdv serve against the raw floor, bare and with presence, for joins; medians and ratios'
            cand floor 'Run the raw relay floor server (what `compare` measures against)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rdv;bench;relay'= {
            cand --source-ips 'Spread connections over 127.0.0.1..=127.0.0.N when ephemeral ports run short'
            cand --threads 'Generator threads (1 leaves the other cores to the server)'
            cand --other-instance 'Another instance of the same cluster (`rdv serve --cluster`): the second peer of every pair (relay) and every other joiner (join) connect there, so every relay and every presence event crosses instances'
            cand --pairs 'Caller/callee pairs'
            cand --in-flight 'Offers in flight per pair'
            cand --payload 'Size of each relayed message as sent, exactly (the same on both wires in `compare`)'
            cand --duration 'Measured time, after the warm-up'
            cand --warmup 'Time before measuring'
            cand --color 'When to use colour in output meant for people'
            cand --json 'Print one JSON object instead of text'
            cand --one-room 'All pairs in one room instead of a room each'
            cand --floor 'Speak the raw floor''s TARGET|payload instead of the protocol'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdv;bench;join'= {
            cand --source-ips 'Spread connections over 127.0.0.1..=127.0.0.N when ephemeral ports run short'
            cand --threads 'Generator threads (1 leaves the other cores to the server)'
            cand --other-instance 'Another instance of the same cluster (`rdv serve --cluster`): the second peer of every pair (relay) and every other joiner (join) connect there, so every relay and every presence event crosses instances'
            cand --peers 'peers'
            cand --rooms 'rooms'
            cand --concurrency 'Registrations in progress at once'
            cand --server-pid 'The server''s process ID, to sample its resident memory and the CPU time its joins took'
            cand --hold 'Keep the peers connected (answering pings) this long, then sample again'
            cand --color 'When to use colour in output meant for people'
            cand --json 'Print one JSON object instead of text'
            cand --floor 'Join the raw floor instead (connect, upgrade, wait for its `ready`): the least a join can cost on this stack and machine, to read rdv''s joins/s against'
            cand --floor-presence 'With --floor: the floor keeps the rooms too, answers with the members and tells each member of every arrival and departure. The writes presence costs, without rdv''s parsing and checks, to read rdv''s joins/s in rooms of more than one against'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdv;bench;fanout'= {
            cand --source-ips 'Spread connections over 127.0.0.1..=127.0.0.N when ephemeral ports run short'
            cand --threads 'Generator threads (1 leaves the other cores to the server)'
            cand --other-instance 'Another instance of the same cluster (`rdv serve --cluster`): the second peer of every pair (relay) and every other joiner (join) connect there, so every relay and every presence event crosses instances'
            cand --peers 'peers'
            cand --server-pid 'server-pid'
            cand --color 'When to use colour in output meant for people'
            cand --json 'Print one JSON object instead of text'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdv;bench;churn'= {
            cand --source-ips 'Spread connections over 127.0.0.1..=127.0.0.N when ephemeral ports run short'
            cand --threads 'Generator threads (1 leaves the other cores to the server)'
            cand --other-instance 'Another instance of the same cluster (`rdv serve --cluster`): the second peer of every pair (relay) and every other joiner (join) connect there, so every relay and every presence event crosses instances'
            cand --warmup 'Cycles before the memory baseline is taken (one-time growth is not a leak)'
            cand --duration 'Measured cycling time, after the warm-up'
            cand --rate 'Cycles started per second'
            cand --concurrency 'concurrency'
            cand --server-pid 'server-pid'
            cand --color 'When to use colour in output meant for people'
            cand --json 'Print one JSON object instead of text'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdv;bench;compare'= {
            cand --pairs 'Caller/callee pairs'
            cand --in-flight 'Offers in flight per pair'
            cand --payload 'Size of each relayed message as sent, exactly (the same on both wires in `compare`)'
            cand --duration 'Measured time, after the warm-up'
            cand --warmup 'Time before measuring'
            cand --runs 'Runs of each (the median is reported)'
            cand --threads 'threads'
            cand --read-buffer 'Read buffer of both servers (rdv serve''s --read-buffer)'
            cand --color 'When to use colour in output meant for people'
            cand --one-room 'All pairs in one room instead of a room each'
            cand --json 'json'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdv;bench;compare-join'= {
            cand --peers 'peers'
            cand --rooms 'Rooms the peers are spread over (5000 peers in 500 rooms: rooms of 10)'
            cand --concurrency 'Registrations in progress at once'
            cand --runs 'Runs of each (the median is reported)'
            cand --source-ips 'Spread connections over 127.0.0.1..=127.0.0.N: every run''s sockets linger in TIME_WAIT, and one address has ports for about 28,000 of them'
            cand --read-buffer 'Read buffer of both servers (rdv serve''s --read-buffer)'
            cand --color 'When to use colour in output meant for people'
            cand --json 'json'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdv;bench;floor'= {
            cand --listen 'listen'
            cand --read-buffer 'read-buffer'
            cand --color 'When to use colour in output meant for people'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdv;bench;help'= {
            cand relay 'Pairs relaying ~1 KiB offers and answers: messages/s, one-way latency, loss'
            cand join 'N peers register over R rooms: joins/s, register→welcome latency, server memory'
            cand fanout 'K peers join one room in turn: peer-joined events/s and when the last join is seen'
            cand churn 'Connect/register/leave cycles at a bounded rate: cycles/s and whether memory returns'
            cand compare 'rdv serve against the raw relay floor, alternating runs; medians and ratios'
            cand compare-join 'rdv serve against the raw floor, bare and with presence, for joins; medians and ratios'
            cand floor 'Run the raw relay floor server (what `compare` measures against)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rdv;bench;help;relay'= {
        }
        &'rdv;bench;help;join'= {
        }
        &'rdv;bench;help;fanout'= {
        }
        &'rdv;bench;help;churn'= {
        }
        &'rdv;bench;help;compare'= {
        }
        &'rdv;bench;help;compare-join'= {
        }
        &'rdv;bench;help;floor'= {
        }
        &'rdv;bench;help;help'= {
        }
        &'rdv;completions'= {
            cand --color 'When to use colour in output meant for people'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdv;help'= {
            cand serve 'Run the signaling server'
            cand keygen 'Make key pairs (EC, Ed25519 or RSA) as JWK or PEM'
            cand fingerprint 'Print the peer IDs of keys, check them against a buddy list, or build one'
            cand token 'Make an access token for a server started with --auth-key, or check one'
            cand peer 'Join a room from the terminal: see and send every signaling message'
            cand bench 'Load-test a signaling server, or compare rdv with a raw relay floor'
            cand completions 'Print a shell completion script to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rdv;help;serve'= {
        }
        &'rdv;help;keygen'= {
        }
        &'rdv;help;fingerprint'= {
        }
        &'rdv;help;token'= {
        }
        &'rdv;help;peer'= {
        }
        &'rdv;help;bench'= {
            cand relay 'Pairs relaying ~1 KiB offers and answers: messages/s, one-way latency, loss'
            cand join 'N peers register over R rooms: joins/s, register→welcome latency, server memory'
            cand fanout 'K peers join one room in turn: peer-joined events/s and when the last join is seen'
            cand churn 'Connect/register/leave cycles at a bounded rate: cycles/s and whether memory returns'
            cand compare 'rdv serve against the raw relay floor, alternating runs; medians and ratios'
            cand compare-join 'rdv serve against the raw floor, bare and with presence, for joins; medians and ratios'
            cand floor 'Run the raw relay floor server (what `compare` measures against)'
        }
        &'rdv;help;bench;relay'= {
        }
        &'rdv;help;bench;join'= {
        }
        &'rdv;help;bench;fanout'= {
        }
        &'rdv;help;bench;churn'= {
        }
        &'rdv;help;bench;compare'= {
        }
        &'rdv;help;bench;compare-join'= {
        }
        &'rdv;help;bench;floor'= {
        }
        &'rdv;help;completions'= {
        }
        &'rdv;help;help'= {
        }
    ]
    $completions[$command]
}

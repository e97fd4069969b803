# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_rdv_global_optspecs
    string join \n color= h/help V/version
end

function __fish_rdv_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_rdv_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_rdv_using_subcommand
    set -l cmd (__fish_rdv_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c rdv -n "__fish_rdv_needs_command" -l color -d 'When to use colour in output meant for people' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set'
always\t''
never\t''"
complete -c rdv -n "__fish_rdv_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdv -n "__fish_rdv_needs_command" -s V -l version -d 'Print version'
complete -c rdv -n "__fish_rdv_needs_command" -f -a "serve" -d 'Run the signaling server'
complete -c rdv -n "__fish_rdv_needs_command" -f -a "keygen" -d 'Make key pairs (EC, Ed25519 or RSA) as JWK or PEM'
complete -c rdv -n "__fish_rdv_needs_command" -f -a "fingerprint" -d 'Print the peer IDs of keys, check them against a buddy list, or build one'
complete -c rdv -n "__fish_rdv_needs_command" -f -a "token" -d 'Make an access token for a server started with --auth-key, or check one'
complete -c rdv -n "__fish_rdv_needs_command" -f -a "peer" -d 'Join a room from the terminal: see and send every signaling message'
complete -c rdv -n "__fish_rdv_needs_command" -f -a "bench" -d 'Load-test a signaling server, or compare rdv with a raw relay floor'
complete -c rdv -n "__fish_rdv_needs_command" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c rdv -n "__fish_rdv_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l config -d 'Read settings from this TOML file, each under its flag\'s name without the dashes (`max-connections = 20000`). Flags and RDV_* variables win over the file' -r -F
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l listen -d 'Address to listen on; port 0 picks a free port. The bound address is printed on stdout as one line: `listening ADDR`' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l tls-cert -d 'Serve TLS (wss:// and https://) with this PEM certificate chain; needs --tls-key. SIGHUP reloads the pair without dropping a connection' -r -F
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l tls-key -d 'The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert' -r -F
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l max-message-size -d 'Largest message accepted; a bigger one closes its connection with 1009' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l read-buffer -d 'WebSocket read buffer per connection, allocated up front: small saves memory per idle peer (it grows to fit a larger message). Busy connections read ahead up to 16 KiB per system call whatever its size' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l ping-interval -d 'Interval between the server\'s WebSocket pings; a connection silent for two intervals is closed and its peer reported as left' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l register-timeout -d 'How long a connection may stay unregistered before it is closed with 1008; also how long a client may take to send its whole HTTP request head' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l max-unregistered -d 'Connections not registered yet (request head arriving, or upgraded and waiting for `register`), counted from accept. When full, the oldest of them is closed to make room (1013 if upgraded), so idle sockets never lock out new clients or registered peers' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l message-timeout -d 'How long one message may take to arrive whole, from its first frame to its last (a fragmented message, or one large frame); a slower one closes its connection (1008)' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l max-unfinished-bytes -d 'Bytes of unfinished messages (fragments not yet complete) held across the whole server; a connection that would go past it is closed with 1013' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l outbound-queue -d 'Messages queued for one connection before it counts as too slow and is closed with 1013' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l outbound-queue-bytes -d 'Bytes queued for one connection before it counts as too slow and is closed with 1013; with --outbound-queue this bounds the memory a stalled receiver can hold' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l max-outbound-bytes -d 'Bytes queued to all connections together, from queued until the socket takes them. At the ceiling the slowest receivers (largest backlogs) are closed first with 1013' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l max-connections -d 'Open WebSocket connections allowed at once; more are closed with 1013' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l max-peers-per-room -d 'Registered peers allowed in one room; more get `room-full`' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l rate-limit -d 'Messages per second one connection may send on average' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l rate-burst -d 'Messages one connection may send in a burst above the rate; a connection that keeps sending after a whole burst has been dropped is closed with 1008' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l resume-grace -d 'How long a registered peer whose connection dropped without a close frame (a reset, a lost network, a keepalive timeout) keeps its place in the room: a `register` of the same peer ID within it resumes, unseen by the room, and gets the relays sent to it meanwhile (PROTOCOL §14). 0 turns it off: the room hears `peer-left` at once' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l drain-timeout -d 'Longest wait for connections to close on SIGINT/SIGTERM before exiting anyway' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l allow-list -d 'Only these peer IDs may register (a file of IDs, one per line, `#` comments; or a JSON buddy list `[{"id": …}]`). Others get `forbidden` and are closed with 1008' -r -F
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l allow-origin -d 'Browser origins allowed to connect (repeatable): exact, like https://app.example.com, or https://*.example.com for its subdomains. A browser upgrade from another origin gets 403. Without any, every origin is allowed' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l room-pattern -d 'Room names must match this regular expression (whole name); others get 400 naming it' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l max-connections-per-ip -d 'Open WebSocket connections allowed from one client address (an IPv6 /64 counts as one); more get 429 with Retry-After' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l connect-rate-per-ip -d 'Upgrades one client address may start per second (token bucket, a second\'s worth at once); more get 429 with Retry-After' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l trusted-proxy -d 'Proxies (repeatable CIDR, e.g. 10.0.0.0/8 or 127.0.0.1/32) whose --client-address-header names the client; from anyone else it is ignored' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l client-address-header -d 'The one header your trusted proxy names the client in. It is read across all its lines from the right, past trusted proxies, to the first address that is not one; every other forwarding header is ignored, so a client cannot choose its address' -r -f -a "x-forwarded-for\t'`X-Forwarded-For: client, proxy1, …` (nginx, Caddy and HAProxy\'s default)'
forwarded\t'RFC 7239 `Forwarded: for=client, for=proxy1, …`'
x-real-ip\t'`X-Real-IP: client`, one address set by the proxy'"
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l proof -d 'Proof of possession (PROTOCOL §9): `off` keeps the original protocol byte for byte; `optional` and `required` send a challenge and mark peers verified or not' -r -f -a "off\t'No challenge; `register` carries no proof'
optional\t'A proof, when given, must be valid; peers without one are unverified'
required\t'Every `register` must carry a valid proof'"
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l max-proof-checks -d 'Proof-of-possession checks the whole server does per second, in units of one P-256, Ed25519 or RSA-2048 check (RSA-4096 counts 4, RSA-8192 16, and up to 4 times that for an exponent above 65537). Only proofs that pass every free check are charged. Past it, a register with a proof is closed with 1013 to retry later, so a flood of proofs cannot take the CPU' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l auth-key -d 'Require an access token (a JWT) with every register (PROTOCOL §13), signed by a key in this file (repeatable): a public JWK, a JWK Set, PEM public keys (ES256, ES384, EdDSA, RS256/PS256…), an `oct` JWK, or a secret on the first line (HS256). The algorithm comes from the key, never from the token. Reloaded on SIGHUP' -r -F
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l auth-audience -d 'With --auth-key: tokens must name one of these audiences in `aud` (repeatable)' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l auth-issuer -d 'With --auth-key: tokens must come from one of these issuers (`iss`, repeatable)' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l ice-server -d 'STUN or TURN server to hand peers in `welcome` (repeatable): stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp], turns:… (PROTOCOL §10). Without any, nothing changes on the wire' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l turn-secret-file -d 'coturn\'s static-auth-secret (the file\'s first line): TURN URLs get time-limited credentials for each peer, EXPIRY:PEER_ID and base64(HMAC-SHA1(secret, username)). Read at start and on SIGHUP; never logged' -r -F
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l turn-ttl -d 'How long TURN credentials are valid; peers get fresh ones (an `ice-servers` message) at 80 % of it' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l cluster -d 'Run as one instance of a cluster: rooms span every instance connected to this Redis 7 (or Valkey), redis://HOST:PORT[/DB] or rediss:// for TLS, or to a Redis Cluster given by seed nodes, redis://HOST1:PORT1,HOST2:PORT2,… (docs/cluster.md). Without it the server is a single process that needs nothing else' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l cluster-password-file -d 'The Redis password (the file\'s first line), instead of putting it in --cluster\'s URL' -r -F
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l cluster-lease -d 'How long the members of an instance that stops without a goodbye (a crash, a lost host) stay in their rooms before the rest of the cluster announces them gone' -r
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l log-format -d 'Log format on stderr; the level comes from `RDV_LOG` (e.g. `info`, `rdv=debug`)' -r -f -a "text\t''
json\t''"
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l color -d 'When to use colour in output meant for people' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set'
always\t''
never\t''"
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l check-config -d 'Check the configuration (files readable, certificate matching its key, patterns), print every setting with where it came from, and exit: 0 if it is sound, else 1 with every problem'
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l require-origin -d 'Refuse upgrades that send no Origin header (non-browser clients send none)'
complete -c rdv -n "__fish_rdv_using_subcommand serve" -l log-room-names -d 'Write room names into the connection log; otherwise each room is logged as a short keyed hash (the same room gives the same hash while the server runs)'
complete -c rdv -n "__fish_rdv_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdv -n "__fish_rdv_using_subcommand serve" -s V -l version -d 'Print version'
complete -c rdv -n "__fish_rdv_using_subcommand keygen" -s t -l type -d 'Key type' -r -f -a "ec\t'Elliptic curve (ECDSA), as WebCrypto makes by default'
okp\t'Ed25519'
rsa\t''"
complete -c rdv -n "__fish_rdv_using_subcommand keygen" -l curve -d 'Curve for --type ec [default: P-256]' -r -f -a "P-256\t''
P-384\t''
P-521\t''"
complete -c rdv -n "__fish_rdv_using_subcommand keygen" -l bits -d 'Modulus size for --type rsa [default: 3072]' -r -f -a "2048\t''
3072\t''
4096\t''"
complete -c rdv -n "__fish_rdv_using_subcommand keygen" -l format -d 'Output format: JWK (kid = --name, else the peer ID) or PEM (PKCS#8 private, SPKI public)' -r -f -a "jwk\t''
pem\t''"
complete -c rdv -n "__fish_rdv_using_subcommand keygen" -s o -l out -d 'Write the private key to FILE (mode 0600) instead of stdout' -r -F
complete -c rdv -n "__fish_rdv_using_subcommand keygen" -l public-out -d 'Also write the public key to FILE' -r -F
complete -c rdv -n "__fish_rdv_using_subcommand keygen" -l name -d 'A name for the key, written as its JWK `kid`: buddy lists made from the key (`rdv fingerprint --buddy-list`) and `rdv peer --buddies` show it [default: the peer ID]' -r
complete -c rdv -n "__fish_rdv_using_subcommand keygen" -l count -d 'Make N key pairs into --out-dir: PEERID.jwk, PEERID.pub.jwk (or .pem) and buddies.json' -r
complete -c rdv -n "__fish_rdv_using_subcommand keygen" -l out-dir -d 'Directory for --count (created if missing)' -r -F
complete -c rdv -n "__fish_rdv_using_subcommand keygen" -l color -d 'When to use colour in output meant for people' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set'
always\t''
never\t''"
complete -c rdv -n "__fish_rdv_using_subcommand keygen" -l json -d 'Print {"privateKey", "publicKey", "peerId"} on stdout as one line of JSON'
complete -c rdv -n "__fish_rdv_using_subcommand keygen" -l force -d 'Replace existing files'
complete -c rdv -n "__fish_rdv_using_subcommand keygen" -s q -l quiet -d 'Do not print the peer ID (or the batch summary) on stderr'
complete -c rdv -n "__fish_rdv_using_subcommand keygen" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdv -n "__fish_rdv_using_subcommand keygen" -s V -l version -d 'Print version'
complete -c rdv -n "__fish_rdv_using_subcommand fingerprint" -l encoding -d 'How to print the digest: hex (default for peer-id) or base64url (default for rfc7638)' -r -f -a "hex\t''
base64url\t''"
complete -c rdv -n "__fish_rdv_using_subcommand fingerprint" -l scheme -d 'What to hash: the peer ID text of PROTOCOL §4, or the standard RFC 7638 JWK thumbprint (same members, sorted by name; never equal to the peer ID)' -r -f -a "peer-id\t'PROTOCOL §4 peer ID'
rfc7638\t'RFC 7638 JWK thumbprint'"
complete -c rdv -n "__fish_rdv_using_subcommand fingerprint" -l check -d 'Exit 0 only if every key\'s peer ID is on this buddy list (JSON, or one ID per line); prints `SOURCE: OK` or `SOURCE: NOT ON LIST` for each key' -r -F
complete -c rdv -n "__fish_rdv_using_subcommand fingerprint" -l expect -d 'Exit 0 only if the single key\'s digest (as printed) equals ID' -r
complete -c rdv -n "__fish_rdv_using_subcommand fingerprint" -l color -d 'When to use colour in output meant for people' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set'
always\t''
never\t''"
complete -c rdv -n "__fish_rdv_using_subcommand fingerprint" -l json -d 'Print a JSON array instead of lines'
complete -c rdv -n "__fish_rdv_using_subcommand fingerprint" -l explain -d 'Print the exact text that is hashed instead of the digest, to compare with a browser\'s JSON.stringify output'
complete -c rdv -n "__fish_rdv_using_subcommand fingerprint" -l buddy-list -d 'Print a JSON buddy list [{"id", "name", "publicKey"}]; the name is the key\'s kid (unless the kid is just the peer ID, as `rdv keygen` sets it without --name), else the file stem'
complete -c rdv -n "__fish_rdv_using_subcommand fingerprint" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdv -n "__fish_rdv_using_subcommand fingerprint" -s V -l version -d 'Print version'
complete -c rdv -n "__fish_rdv_using_subcommand token" -l key -d 'The signing key (or, with --verify, the key or keys to check with)' -r -F
complete -c rdv -n "__fish_rdv_using_subcommand token" -l room -d 'A room the token grants (repeatable): an exact name, or a prefix ending in `*` (`game-*`; `*` alone grants every room). With --verify: check the token for it' -r
complete -c rdv -n "__fish_rdv_using_subcommand token" -l peer -d 'Bind the token to this peer ID (`sub`): only that key may use it' -r
complete -c rdv -n "__fish_rdv_using_subcommand token" -l for -d 'Bind the token to the peer ID of the key in this file (public or private)' -r -F
complete -c rdv -n "__fish_rdv_using_subcommand token" -l ttl -d 'How long the token is valid' -r
complete -c rdv -n "__fish_rdv_using_subcommand token" -l aud -d 'The audience (`aud`); with --verify, the one required' -r
complete -c rdv -n "__fish_rdv_using_subcommand token" -l iss -d 'The issuer (`iss`); with --verify, the one required' -r
complete -c rdv -n "__fish_rdv_using_subcommand token" -l max-peers -d 'The room\'s size when the token\'s holder is the first to join it (`max_peers`)' -r
complete -c rdv -n "__fish_rdv_using_subcommand token" -l alg -d 'The signing algorithm, when the key allows several (RSA: RS256 by default, or PS256…; a secret: HS256, HS384 or HS512)' -r
complete -c rdv -n "__fish_rdv_using_subcommand token" -l color -d 'When to use colour in output meant for people' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set'
always\t''
never\t''"
complete -c rdv -n "__fish_rdv_using_subcommand token" -l verify -d 'Check TOKEN instead of making one'
complete -c rdv -n "__fish_rdv_using_subcommand token" -l json -d 'With --verify: print JSON instead of lines'
complete -c rdv -n "__fish_rdv_using_subcommand token" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdv -n "__fish_rdv_using_subcommand token" -s V -l version -d 'Print version'
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l key -d 'Private key to register with (JWK or PEM, e.g. from `rdv keygen`); without it an ephemeral P-256 key is made and its peer ID printed' -r -F
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l buddies -d 'Buddy list (JSON or one ID per line): peers are shown as buddies or unknown' -r -F
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l ca -d 'Trust this CA (PEM) for wss:// instead of the system\'s roots' -r -F
complete -c rdv -n "__fish_rdv_using_subcommand peer" -s H -l header -d 'Extra HTTP header for the upgrade request, e.g. -H \'Authorization: Bearer x\' (repeatable)' -r
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l timeout -d 'Give up after DURATION: exit 5 if conditions are unmet, 0 if none were given' -r
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l wait-peers -d 'Condition: at least N other peers are in the room' -r
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l expect -d 'Condition: a message of TYPE arrived (repeatable: each type must arrive)' -r
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l until -d 'Condition: a message whose member at PATH equals VALUE arrived, e.g. .sdp.type=answer (repeatable: each must match some message)' -r
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l count -d 'Condition: N messages arrived (all types, welcome included)' -r
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l linger -d 'After stdin ends, stay DURATION for replies, then leave' -r
complete -c rdv -n "__fish_rdv_using_subcommand peer" -s x -l send -d 'Message to send after registering (repeatable; before stdin lines)' -r
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l send-file -d 'Send each line of FILE after registering (after -x, before stdin lines)' -r -F
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l send-after-peers -d 'Hold every outgoing message (-x, --send-file, stdin) until at least N other peers are in the room, so an offer is not sent before its callee has arrived' -r
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l delay -d 'Pause between the messages of -x and --send-file' -r
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l answer-template -d 'JSON (or @FILE) merged into each automatic answer; `to` and `type` are filled in [default: a placeholder SDP]' -r
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l connect -d 'With --webrtc: offer a connection to PEER (a peer ID or a unique prefix of one) once it is in the room; `*` offers to every peer in the room and every newcomer' -r
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l token -d 'Access token to register with, for a server started with --auth-key (PROTOCOL §13; `rdv token` makes one). Prefer RDV_TOKEN: a flag\'s value shows in the process list' -r
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l challenge-wait -d 'How long to wait for a server\'s challenge before registering without one' -r
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l color -d 'When to use colour in output meant for people' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set'
always\t''
never\t''"
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l only-buddies -d 'Refuse to send to peers that are not on --buddies, and drop offers and answers from buddies that are not validly signed (PROTOCOL §12)'
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l require-signed -d 'Drop offers and answers whose signature is missing or invalid (PROTOCOL §12): reported on stderr, never printed, answered or counted by --expect and --until'
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l no-sign -d 'Do not sign the offers and answers this peer sends (they are signed with its key by default, PROTOCOL §12)'
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l insecure -d 'Accept any TLS certificate (for tests against self-signed servers)'
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l json -d 'Script mode even on a terminal'
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l exit-on-eof -d 'Leave once stdin has ended, everything was sent and the server has answered it all (a ping after the last message, and its pong): a refusal still makes the exit code 10'
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l answer-offers -d 'Answer every offer, as a simulated callee (see --answer-template)'
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l reconnect -d 'On a dropped connection, back off and reconnect with the same key (within the server\'s --resume-grace the room does not see us go). On by default interactively; in script mode a drop exits 8 unless this is given'
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l no-reconnect -d 'Never reconnect: a dropped connection ends the run (exit 8), interactive or not'
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l ice-check -d 'After the welcome, check every ICE server it lists — a STUN Binding request, a TURN Allocate with the minted credential (UDP) — report each (reachable, allocation, relayed or reflexive address, round trip; NDJSON `ice-check` lines in script mode) and leave: 0 if all answered, 1 if any failed or none could be tried (TLS and TCP URLs are listed as skipped)'
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l webrtc -d 'Open real WebRTC peer connections (a data channel, as rdv.js\'s): answer every offer, and offer to --connect\'s peer. Reports ICE, the selected candidate pair (type, addresses, round trip), the channel\'s state and what arrives on it (NDJSON `webrtc` lines in script mode); stdin lines (or lines typed) go over the channel'
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l relay-only -d 'With --webrtc: offer only candidates relayed through the TURN servers the welcome lists (with the credential the server minted), to test that a peer can be reached through TURN alone'
complete -c rdv -n "__fish_rdv_using_subcommand peer" -l no-proof -d 'Never answer a proof-of-possession challenge (to test a server\'s `required` mode)'
complete -c rdv -n "__fish_rdv_using_subcommand peer" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdv -n "__fish_rdv_using_subcommand peer" -s V -l version -d 'Print version'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and not __fish_seen_subcommand_from relay join fanout churn compare compare-join floor help" -l color -d 'When to use colour in output meant for people' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set'
always\t''
never\t''"
complete -c rdv -n "__fish_rdv_using_subcommand bench; and not __fish_seen_subcommand_from relay join fanout churn compare compare-join floor help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and not __fish_seen_subcommand_from relay join fanout churn compare compare-join floor help" -s V -l version -d 'Print version'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and not __fish_seen_subcommand_from relay join fanout churn compare compare-join floor help" -f -a "relay" -d 'Pairs relaying ~1 KiB offers and answers: messages/s, one-way latency, loss'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and not __fish_seen_subcommand_from relay join fanout churn compare compare-join floor help" -f -a "join" -d 'N peers register over R rooms: joins/s, register→welcome latency, server memory'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and not __fish_seen_subcommand_from relay join fanout churn compare compare-join floor help" -f -a "fanout" -d 'K peers join one room in turn: peer-joined events/s and when the last join is seen'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and not __fish_seen_subcommand_from relay join fanout churn compare compare-join floor help" -f -a "churn" -d 'Connect/register/leave cycles at a bounded rate: cycles/s and whether memory returns'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and not __fish_seen_subcommand_from relay join fanout churn compare compare-join floor help" -f -a "compare" -d 'rdv serve against the raw relay floor, alternating runs; medians and ratios'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and not __fish_seen_subcommand_from relay join fanout churn compare compare-join floor help" -f -a "compare-join" -d 'rdv serve against the raw floor, bare and with presence, for joins; medians and ratios'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and not __fish_seen_subcommand_from relay join fanout churn compare compare-join floor help" -f -a "floor" -d 'Run the raw relay floor server (what `compare` measures against)'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and not __fish_seen_subcommand_from relay join fanout churn compare compare-join floor help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from relay" -l source-ips -d 'Spread connections over 127.0.0.1..=127.0.0.N when ephemeral ports run short' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from relay" -l threads -d 'Generator threads (1 leaves the other cores to the server)' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from relay" -l other-instance -d 'Another instance of the same cluster (`rdv serve --cluster`): the second peer of every pair (relay) and every other joiner (join) connect there, so every relay and every presence event crosses instances' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from relay" -l pairs -d 'Caller/callee pairs' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from relay" -l in-flight -d 'Offers in flight per pair' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from relay" -l payload -d 'Size of each relayed message as sent, exactly (the same on both wires in `compare`)' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from relay" -l duration -d 'Measured time, after the warm-up' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from relay" -l warmup -d 'Time before measuring' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from relay" -l color -d 'When to use colour in output meant for people' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set'
always\t''
never\t''"
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from relay" -l json -d 'Print one JSON object instead of text'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from relay" -l one-room -d 'All pairs in one room instead of a room each'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from relay" -l floor -d 'Speak the raw floor\'s TARGET|payload instead of the protocol'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from relay" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from relay" -s V -l version -d 'Print version'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from join" -l source-ips -d 'Spread connections over 127.0.0.1..=127.0.0.N when ephemeral ports run short' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from join" -l threads -d 'Generator threads (1 leaves the other cores to the server)' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from join" -l other-instance -d 'Another instance of the same cluster (`rdv serve --cluster`): the second peer of every pair (relay) and every other joiner (join) connect there, so every relay and every presence event crosses instances' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from join" -l peers -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from join" -l rooms -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from join" -l concurrency -d 'Registrations in progress at once' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from join" -l server-pid -d 'The server\'s process ID, to sample its resident memory and the CPU time its joins took' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from join" -l hold -d 'Keep the peers connected (answering pings) this long, then sample again' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from join" -l color -d 'When to use colour in output meant for people' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set'
always\t''
never\t''"
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from join" -l json -d 'Print one JSON object instead of text'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from join" -l floor -d 'Join the raw floor instead (connect, upgrade, wait for its `ready`): the least a join can cost on this stack and machine, to read rdv\'s joins/s against'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from join" -l floor-presence -d 'With --floor: the floor keeps the rooms too, answers with the members and tells each member of every arrival and departure. The writes presence costs, without rdv\'s parsing and checks, to read rdv\'s joins/s in rooms of more than one against'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from join" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from join" -s V -l version -d 'Print version'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from fanout" -l source-ips -d 'Spread connections over 127.0.0.1..=127.0.0.N when ephemeral ports run short' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from fanout" -l threads -d 'Generator threads (1 leaves the other cores to the server)' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from fanout" -l other-instance -d 'Another instance of the same cluster (`rdv serve --cluster`): the second peer of every pair (relay) and every other joiner (join) connect there, so every relay and every presence event crosses instances' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from fanout" -l peers -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from fanout" -l server-pid -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from fanout" -l color -d 'When to use colour in output meant for people' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set'
always\t''
never\t''"
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from fanout" -l json -d 'Print one JSON object instead of text'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from fanout" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from fanout" -s V -l version -d 'Print version'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from churn" -l source-ips -d 'Spread connections over 127.0.0.1..=127.0.0.N when ephemeral ports run short' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from churn" -l threads -d 'Generator threads (1 leaves the other cores to the server)' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from churn" -l other-instance -d 'Another instance of the same cluster (`rdv serve --cluster`): the second peer of every pair (relay) and every other joiner (join) connect there, so every relay and every presence event crosses instances' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from churn" -l warmup -d 'Cycles before the memory baseline is taken (one-time growth is not a leak)' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from churn" -l duration -d 'Measured cycling time, after the warm-up' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from churn" -l rate -d 'Cycles started per second' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from churn" -l concurrency -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from churn" -l server-pid -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from churn" -l color -d 'When to use colour in output meant for people' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set'
always\t''
never\t''"
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from churn" -l json -d 'Print one JSON object instead of text'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from churn" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from churn" -s V -l version -d 'Print version'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare" -l pairs -d 'Caller/callee pairs' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare" -l in-flight -d 'Offers in flight per pair' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare" -l payload -d 'Size of each relayed message as sent, exactly (the same on both wires in `compare`)' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare" -l duration -d 'Measured time, after the warm-up' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare" -l warmup -d 'Time before measuring' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare" -l runs -d 'Runs of each (the median is reported)' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare" -l threads -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare" -l read-buffer -d 'Read buffer of both servers (rdv serve\'s --read-buffer)' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare" -l color -d 'When to use colour in output meant for people' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set'
always\t''
never\t''"
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare" -l one-room -d 'All pairs in one room instead of a room each'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare" -l json
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare" -s V -l version -d 'Print version'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare-join" -l peers -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare-join" -l rooms -d 'Rooms the peers are spread over (5000 peers in 500 rooms: rooms of 10)' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare-join" -l concurrency -d 'Registrations in progress at once' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare-join" -l runs -d 'Runs of each (the median is reported)' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare-join" -l source-ips -d 'Spread connections over 127.0.0.1..=127.0.0.N: every run\'s sockets linger in TIME_WAIT, and one address has ports for about 28,000 of them' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare-join" -l read-buffer -d 'Read buffer of both servers (rdv serve\'s --read-buffer)' -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare-join" -l color -d 'When to use colour in output meant for people' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set'
always\t''
never\t''"
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare-join" -l json
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare-join" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from compare-join" -s V -l version -d 'Print version'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from floor" -l listen -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from floor" -l read-buffer -r
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from floor" -l color -d 'When to use colour in output meant for people' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set'
always\t''
never\t''"
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from floor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from floor" -s V -l version -d 'Print version'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "relay" -d 'Pairs relaying ~1 KiB offers and answers: messages/s, one-way latency, loss'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "join" -d 'N peers register over R rooms: joins/s, register→welcome latency, server memory'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "fanout" -d 'K peers join one room in turn: peer-joined events/s and when the last join is seen'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "churn" -d 'Connect/register/leave cycles at a bounded rate: cycles/s and whether memory returns'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "compare" -d 'rdv serve against the raw relay floor, alternating runs; medians and ratios'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "compare-join" -d 'rdv serve against the raw floor, bare and with presence, for joins; medians and ratios'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "floor" -d 'Run the raw relay floor server (what `compare` measures against)'
complete -c rdv -n "__fish_rdv_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rdv -n "__fish_rdv_using_subcommand completions" -l color -d 'When to use colour in output meant for people' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set'
always\t''
never\t''"
complete -c rdv -n "__fish_rdv_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdv -n "__fish_rdv_using_subcommand completions" -s V -l version -d 'Print version'
complete -c rdv -n "__fish_rdv_using_subcommand help; and not __fish_seen_subcommand_from serve keygen fingerprint token peer bench completions help" -f -a "serve" -d 'Run the signaling server'
complete -c rdv -n "__fish_rdv_using_subcommand help; and not __fish_seen_subcommand_from serve keygen fingerprint token peer bench completions help" -f -a "keygen" -d 'Make key pairs (EC, Ed25519 or RSA) as JWK or PEM'
complete -c rdv -n "__fish_rdv_using_subcommand help; and not __fish_seen_subcommand_from serve keygen fingerprint token peer bench completions help" -f -a "fingerprint" -d 'Print the peer IDs of keys, check them against a buddy list, or build one'
complete -c rdv -n "__fish_rdv_using_subcommand help; and not __fish_seen_subcommand_from serve keygen fingerprint token peer bench completions help" -f -a "token" -d 'Make an access token for a server started with --auth-key, or check one'
complete -c rdv -n "__fish_rdv_using_subcommand help; and not __fish_seen_subcommand_from serve keygen fingerprint token peer bench completions help" -f -a "peer" -d 'Join a room from the terminal: see and send every signaling message'
complete -c rdv -n "__fish_rdv_using_subcommand help; and not __fish_seen_subcommand_from serve keygen fingerprint token peer bench completions help" -f -a "bench" -d 'Load-test a signaling server, or compare rdv with a raw relay floor'
complete -c rdv -n "__fish_rdv_using_subcommand help; and not __fish_seen_subcommand_from serve keygen fingerprint token peer bench completions help" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c rdv -n "__fish_rdv_using_subcommand help; and not __fish_seen_subcommand_from serve keygen fingerprint token peer bench completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rdv -n "__fish_rdv_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "relay" -d 'Pairs relaying ~1 KiB offers and answers: messages/s, one-way latency, loss'
complete -c rdv -n "__fish_rdv_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "join" -d 'N peers register over R rooms: joins/s, register→welcome latency, server memory'
complete -c rdv -n "__fish_rdv_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "fanout" -d 'K peers join one room in turn: peer-joined events/s and when the last join is seen'
complete -c rdv -n "__fish_rdv_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "churn" -d 'Connect/register/leave cycles at a bounded rate: cycles/s and whether memory returns'
complete -c rdv -n "__fish_rdv_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "compare" -d 'rdv serve against the raw relay floor, alternating runs; medians and ratios'
complete -c rdv -n "__fish_rdv_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "compare-join" -d 'rdv serve against the raw floor, bare and with presence, for joins; medians and ratios'
complete -c rdv -n "__fish_rdv_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "floor" -d 'Run the raw relay floor server (what `compare` measures against)'

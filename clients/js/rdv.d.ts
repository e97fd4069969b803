// Type declarations for rdv.js (the browser client of rdv; see README.md).

export declare const ErrorCode: Readonly<{
  InvalidJson: "invalid-json";
  InvalidMessage: "invalid-message";
  UnknownType: "unknown-type";
  BinaryUnsupported: "binary-unsupported";
  NotRegistered: "not-registered";
  AlreadyRegistered: "already-registered";
  InvalidKey: "invalid-key";
  PrivateKey: "private-key";
  DuplicatePeer: "duplicate-peer";
  UnknownPeer: "unknown-peer";
  RoomFull: "room-full";
  RateLimited: "rate-limited";
  Forbidden: "forbidden";
  ProofRequired: "proof-required";
  ProofInvalid: "proof-invalid";
  Replaced: "replaced";
  Unavailable: "unavailable";
  TokenRequired: "token-required";
  TokenInvalid: "token-invalid";
  TokenExpired: "token-expired";
  RoomForbidden: "room-forbidden";
  TokenPeerMismatch: "token-peer-mismatch";
  ServerMismatch: "server-mismatch";
  PeerMismatch: "peer-mismatch";
  Closed: "closed";
  UnsupportedKey: "unsupported-key";
  SignatureInvalid: "signature-invalid";
  SignatureMissing: "signature-missing";
  NotABuddy: "not-a-buddy";
}>;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export declare class RdvError extends Error {
  constructor(code: ErrorCodeValue | string, message?: string);
  readonly code: ErrorCodeValue | string;
  /** For `signature-invalid`, `signature-missing`: the sender. */
  readonly peerId?: string;
  /** For `signature-invalid`: PROTOCOL §12's reason (`bad-signature`, `stale`, …). */
  readonly reason?: SignatureReason | null;
}

/** Why a signature does not hold (PROTOCOL §12). */
export type SignatureReason =
  | "malformed"
  | "unknown-sender"
  | "wrong-algorithm"
  | "stale"
  | "bad-signature"
  | "replayed";

/** A description's signature check (PROTOCOL §12). */
export type SignatureCheck =
  | { result: "valid" }
  | { result: "missing" }
  | { result: "invalid"; reason: SignatureReason };

/** The `signature` member of a signed offer or answer. */
export interface DescriptionSignature {
  alg: "ES256" | "ES384" | "ES512" | "EdDSA" | "RS256" | "PS256";
  /** Milliseconds since the Unix epoch when it was signed. */
  ts: number;
  /** base64url. */
  sig: string;
}

/** How far a signature's timestamp may be from the receiver's clock (5 minutes). */
export declare const MAX_SKEW_MS: number;
/** The bytes a description's signature covers (PROTOCOL §12), as a string. */
export declare function signedBytes(from: string, to: string, type: string, ts: number, sdp: string): string;
export declare function signDescription(
  identity: Identity,
  to: string,
  description: RTCSessionDescriptionInit,
  now?: number,
): Promise<DescriptionSignature>;
export declare function verifyDescription(
  message: { type: string; from: string; sdp: RTCSessionDescriptionInit; signature?: DescriptionSignature },
  senderJwk: PublicJwk | null | undefined,
  receiver: string,
  now?: number,
): Promise<SignatureCheck>;

/** A public JWK (EC, OKP or RSA). */
export interface PublicJwk {
  kty: "EC" | "OKP" | "RSA";
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
  [member: string]: unknown;
}

export interface Identity {
  /** The public key as the room sees it (its essential members). */
  readonly publicJwk: PublicJwk;
  readonly privateKey: CryptoKey;
  /** PROTOCOL §4: lowercase hex SHA-256 of the key's essential members. */
  readonly peerId: string;
}

export declare function peerId(publicJwk: PublicJwk): Promise<string>;
export declare function publicKeyOf(publicJwk: PublicJwk): PublicJwk;
export declare function base64url(bytes: ArrayBuffer | Uint8Array): string;
export declare function signProof(
  privateKey: CryptoKey,
  nonce: string,
): Promise<{ alg: "ES256" | "ES384" | "ES512" | "EdDSA" | "RS256" | "PS256"; signature: string }>;
export declare function identityFrom(keys: {
  publicKey: CryptoKey | PublicJwk;
  privateKey: CryptoKey;
}): Promise<Identity>;
export declare function generateIdentity(): Promise<Identity>;
/** The identity kept under `name` in IndexedDB, made on first use (a fresh one without IndexedDB). */
export declare function loadIdentity(name?: string): Promise<Identity>;

export declare function registerMessage(
  publicJwk: PublicJwk,
  proof?: { alg: string; signature: string } | null,
  token?: string | null,
): string;
export declare function relayMessage(
  type: "offer" | "answer" | "ice-candidate",
  to: string,
  body: RTCSessionDescriptionInit | RTCIceCandidateInit,
  signature?: DescriptionSignature,
): string;

export type ServerMessage =
  | { type: "challenge"; nonce: string }
  | { type: "welcome"; peerId: string; peers: PeerEntry[]; iceServers?: RTCIceServer[] }
  | { type: "peer-joined"; peerId: string; publicKey: PublicJwk; verified?: boolean }
  | { type: "peer-left"; peerId: string }
  | { type: "offer" | "answer"; from: string; sdp: RTCSessionDescriptionInit; [member: string]: unknown }
  | { type: "ice-candidate"; from: string; candidate: RTCIceCandidateInit; [member: string]: unknown }
  | { type: "error"; code: string; message: string }
  | { type: "pong" }
  | { type: "ice-servers"; iceServers: RTCIceServer[] };

export interface PeerEntry {
  id: string;
  publicKey: PublicJwk;
  verified?: boolean;
}

export declare function parseServerMessage(text: string): ServerMessage | null;
export declare function roomUrl(base: string, room: string): string;
export declare function backoff(
  attempt: number,
  options?: { base?: number; max?: number; random?: () => number },
): number;

export interface Peer {
  readonly id: string;
  readonly publicKey: PublicJwk;
  /** Proof of possession (PROTOCOL §9); `null` when the server does not ask for it. */
  readonly verified: boolean | null;
}

export interface JoinOptions {
  /** Default: {@link loadIdentity}() — the identity kept in IndexedDB. */
  identity?: Identity;
  /** Default: what the server hands out in `welcome` and `ice-servers`, else none. */
  iceServers?: RTCIceServer[];
  /** Leaves the room when aborted. */
  signal?: AbortSignal;
  /** Reconnect with back-off and jitter when the connection drops. Default true. */
  reconnect?: boolean;
  backoff?: { base?: number; max?: number };
  /** "auto" (default): sign when challenged; true: always wait for a challenge; false: never sign. */
  proof?: "auto" | boolean;
  /**
   * An access token for a server started with `--auth-key` (PROTOCOL §13), or a function
   * (sync or async) called before every connect and reconnect for a fresh one.
   */
  token?: string | (() => string | Promise<string>);
  /** Sign our offers and answers with the identity (PROTOCOL §12). Default true. */
  sign?: boolean;
  /** Refuse offers and answers that are unsigned or whose signature does not hold. */
  requireSignatures?: boolean;
  /**
   * Peer IDs to connect to and accept, and no others (`not-a-buddy`); their offers and
   * answers must be validly signed.
   */
  buddies?: Iterable<string>;
  /** More RTCConfiguration for every connection, e.g. `{ iceTransportPolicy: "relay" }`. */
  rtc?: Omit<RTCConfiguration, "iceServers">;
  /** Nothing is logged without it. */
  log?: (level: "debug" | "info" | "warn", message: string) => void;
  WebSocket?: typeof WebSocket;
  RTCPeerConnection?: typeof RTCPeerConnection;
}

export interface RoomEvents {
  "peer-joined": Peer;
  "peer-left": Peer;
  connection: Connection;
  error: RdvError;
  reconnecting: { attempt: number; delay: number };
  /** Welcomed again after a reconnect; `resumed` when the server kept our place (PROTOCOL §14). */
  open: { peers: Peer[]; resumed: boolean };
  "ice-servers": RTCIceServer[];
  closed: Record<string, never>;
}

export declare class Room extends EventTarget {
  readonly url: string;
  readonly identity: Identity;
  /** Our peer ID. */
  readonly id: string;
  /** Every other peer of the room. */
  readonly peers: Map<string, Peer>;
  readonly connections: Map<string, Connection>;
  readonly iceServers: RTCIceServer[];
  /** Subscribes to an event; returns the function that unsubscribes. */
  on<K extends keyof RoomEvents>(type: K, handler: (detail: RoomEvents[K]) => void): () => void;
  /** A connection to `peerId`, once its data channel is open. */
  connect(peerId: string): Promise<Connection>;
  /** Connects to every peer, now and as they join (each a `connection` event). */
  mesh(): this;
  /** Sends a raw signaling message; false if not connected. */
  send(message: string | object): boolean;
  close(): void;
}

export declare class Connection extends EventTarget {
  readonly room: Room;
  readonly peerId: string;
  /** The peer with the larger ID is polite: it yields when both offer at once. */
  readonly polite: boolean;
  readonly pc: RTCPeerConnection;
  /** Negotiated data channel "rdv" (id 0), created by both sides. */
  readonly channel: RTCDataChannel;
  /** Resolves when the data channel opens; rejects if the connection closes first. */
  readonly opened: Promise<Connection>;
  /**
   * Whether the peer's last offer or answer was signed by its key for us (PROTOCOL §12), so
   * the DTLS fingerprint in it is the peer's whatever the server did; `null` until one came.
   */
  readonly verified: boolean | null;
  readonly signature: SignatureCheck | null;
  send(data: string | Blob | ArrayBuffer | ArrayBufferView): void;
  close(): void;
}

/** Joins a room; resolves once welcomed. */
export declare function join(url: string, room: string, options?: JoinOptions): Promise<Room>;

/**
 * lib/websocket.ts — WebSocket (RFC 6455), server side, written from scratch on lib/streams. Everything
 * is re-exported here, so code imports from this file alone; each piece lives in lib/websocket/ and cites
 * the section it implements.
 *
 * 1. The request (lib/http-request-head.ts): an ordinary HTTP/1.1 head, read with `readUntil`, capped.
 * 2. The opening handshake (lib/websocket/handshake.ts, §4.2): a GET with `Upgrade: websocket`; the server
 *    proves it read it (`Sec-WebSocket-Accept` = base64 SHA-1 of the key and a fixed GUID), refuses other
 *    versions (426, naming 13) and cross-site pages (403: the Origin check, §10.2), and answers 101.
 * 3. Frames (lib/websocket/frames.ts, §5.2): a 2-byte header (FIN, opcode, MASK, a 7-bit length), a 16- or
 *    64-bit length when needed, a 4-byte mask from clients, the payload. Clients mask, servers do not.
 * 4. Messages (lib/websocket/connection.ts, §5.4): a message is one frame, or fragments — a first frame and
 *    continuations until FIN; Ping/Pong/Close may come between them, and are answered at once.
 * 5. Text is UTF-8, checked as it arrives (lib/websocket/utf8-validator.ts, §8.1).
 * 6. Closing (lib/websocket/close.ts, §5.5.1, §7): a Close frame each way with a status code, then the
 *    server closes TCP. A peer that breaks the rules gets a Close with the reason's code, then TCP closed.
 */
export {
  MAX_REQUEST_HEAD_BYTES,
  type RequestHead,
  RequestHeadError,
  readRequestHead,
} from "./http-request-head.ts";
export { lingeringClose } from "./lingering-close.ts";
export {
  CloseCode,
  type ClosePayload,
  ClosePayloadError,
  encodeClose,
  isValidCloseCode,
  MAX_CLOSE_REASON_BYTES,
  parseClosePayload,
} from "./websocket/close.ts";
export {
  type CloseInfo,
  DEFAULT_CLOSE_TIMEOUT_MS,
  DEFAULT_MAX_FRAGMENTS,
  WebSocketConnection,
  type WebSocketMessage,
  type WebSocketOptions,
} from "./websocket/connection.ts";
export {
  type EncodedBatch,
  encodeFrame,
  encodeTextFrame,
  encodeTextFrames,
  type Frame,
  FrameError,
  type FrameHeader,
  isControl,
  MAX_CONTROL_PAYLOAD_BYTES,
  Opcode,
  readFrame,
  readFrameHeader,
  readFrameHeaderRest,
  readFramePayload,
  readPayloadPiece,
  skipFramePayload,
  takeFrameHeader,
  takeFramePayload,
  textFrameStarts,
  tooBig,
  unmask,
} from "./websocket/frames.ts";
export {
  acceptKeyFor,
  checkUpgrade,
  isWebSocketUpgrade,
  normalizeOrigin,
  refusalResponse,
  type UpgradeDecision,
  type UpgradeOptions,
  WEBSOCKET_VERSION,
} from "./websocket/handshake.ts";
export { isUtf8, Utf8Validator } from "./websocket/utf8-validator.ts";

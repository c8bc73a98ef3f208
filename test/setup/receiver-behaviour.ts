// Shared by the Node receiver and the workerd tests that script it.

/** How the receiver answers one request. */
export interface Behaviour {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** Wait before answering. */
  delayMs?: number;
  /** reset: destroy the socket; slow-body: send headers, then the body slower than any timeout; garbage: not HTTP. */
  mode?: "reset" | "slow-body" | "garbage";
}

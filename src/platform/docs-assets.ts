// No imports: shared by the Worker (the /docs page) and Node's scripts/build-assets.ts.

/**
 * URL paths of the reference page's scripts: Scalar's standalone bundle and the page's start-up
 * script, written into the Worker's static assets by `scripts/build-assets.ts` and served from
 * this origin, so the reference works without internet access and under a self-only CSP.
 */
export const DOCS_ASSETS = { scalar: "/assets/scalar/standalone.js", init: "/assets/docs.js" } as const;

/** Element the reference mounts on; not `api-reference`, which Scalar's bundle auto-mounts unconfigured. */
export const DOCS_MOUNT_ID = "reference";

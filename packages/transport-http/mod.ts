/**
 * @tsraft/transport-http (work in progress).
 * @module
 */
export {};

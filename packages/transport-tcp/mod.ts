/**
 * @tsraft/transport-tcp (work in progress).
 * @module
 */
export {};

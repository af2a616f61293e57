/**
 * @tsraft/storage-file (work in progress).
 * @module
 */
export {};

/**
 * @tsraft/storage-kv (work in progress).
 * @module
 */
export {};

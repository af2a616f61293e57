// TEMPORARY until @tsraft/core exports the wire codec.
export * from "../core/wire.ts";

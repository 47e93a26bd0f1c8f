// Package ipam is multinetd's side of the multinet-ipam CNI plugin: cluster-wide addresses
// for secondary networks, without a lock object and without an API request per address.
//
// A pool (a network_name's address space) is split into blocks (pool.Range). A node claims a
// free block by creating its IPBlock object: the API server's create decides a race, and the
// loser tries the next block. Inside the blocks it owns, a node allocates on its own: the
// address is written to its local record (one small file, fsynced) before ADD returns, and the
// block object learns it in a later batched write (the flusher). Only the owner ever allocates
// in a block it owns, so its local record is the truth for it.
//
// When no block is free, a node borrows: it asks the owner to share a block (it adds itself to
// spec.shareWanted by compare-and-swap). The owner, watching its blocks, stops allocating
// locally in it, writes every allocation it holds with spec.shared=true in one CAS, and from
// then on allocates there by CAS like everyone else. A shared block's object is the truth for
// who holds what; a borrower allocates with one CAS, so two nodes never take one address.
//
// Releases are local: DEL removes the node's record of the address (or turns it into a hold
// for a StatefulSet pod) and the flusher writes the block back. DEL never needs the API
// server. A released address is free for the owner at once and for other nodes after the
// write-back; it is never in two places. The node's records live in a ledger whose every
// change names the record it removes or replaces and happens only if that very record is
// still the address's: a repeated or stale release (a reconciler that looked before a DEL and
// an ADD took the address again) does nothing. A record's file changes under its address's
// lock, together with the ledger.
//
// The reconciler frees what nobody released: addresses whose pod is gone (after a grace
// period), holds that expired, and the blocks and addresses of deleted nodes once no pod is
// left on them.
package ipam

// Package seal authenticates and encrypts pfsync frames with AES-256-GCM
// under a cluster pre-shared key. It implements pfsync.Sealer.
//
// BSD pfsync has no authentication at all: anyone able to put a TTL-255
// datagram on the sync segment can insert, change or flush states (see
// OpenBSD pfsync(4), "it would be trivial to spoof packets which create
// states, bypassing the pf ruleset"). A Sealer closes that hole: a frame
// that was forged, modified, truncated, replayed, recorded in an earlier run
// or sealed under a key the receiver does not hold is rejected by Open with
// an error wrapping one of the pfsync sentinels and changes no state.
//
// # Keys
//
// The cluster shares a 32-byte pre-shared key (PSK), made by GenerateKey and
// stored with WriteKeyFile, read with LoadKeyFile. A key file holds either
// exactly 32 raw bytes, 64 hexadecimal digits, or the base64 (standard or
// URL alphabet, padded or not) of 32 bytes, surrounding white space ignored.
// LoadKeyFile refuses files readable or writable by group or others and keys
// that do not look random (fewer than 16 distinct byte values, or only
// printable ASCII, i.e. a passphrase).
//
// Every PSK has a one-byte key id. A Sealer accepts frames under every key in
// its Config.Keys and seals with Config.SendKeyID. To rotate without losing
// frames: give every node the new key next to the old one (Rotate with both,
// still sending with the old id), then switch every node's send id to the
// new one, then remove the old key. Each step may reach the nodes in any
// order, but must have reached all of them before the next one starts: a
// node that seals under the new id is understood by every node that holds
// both keys. LoadKeyFiles reads the key files of a step (one per key id)
// into the list Rotate takes, DeriveKeys turns it into the list of a
// protocol sealing under derived keys (confsync.Key), and KeyIDs reports
// the keys in use. Rotate
// keeps the run (epoch, sequence, replay windows), so a running engine
// (or confsync node) sees no restart.
//
// # Traffic keys and nonces
//
// Frames are never sealed under the PSK itself. Each sender seals under a
// traffic key
//
//	PRK = HKDF-Extract(SHA-256, salt = "gocarp pfsync seal v1", PSK)
//	key = HKDF-Expand(SHA-256, PRK, "gocarp traffic" ‖ key id ‖ sender ‖ boot ‖ epoch, 32)
//
// where epoch is drawn when the Sealer is created (below) and boot is the
// persisted boot value (BootCounter). The nonce is the 64-bit sequence
// number, strictly increasing per Sealer, left-padded to 96 bits with the
// boot counter. Because the key changes with every start, a nonce never
// repeats under one key, even across restarts, crashes that lose the
// sequence, or two nodes misconfigured with the same node id.
//
// The epoch is 32 random bits followed by a 32-bit tag over them:
//
//	epoch key = HKDF-Expand(SHA-256, PRK, "gocarp epoch" ‖ key id, 32)
//	tag       = first 4 bytes of AES-256(epoch key, sender ‖ boot ‖ random ‖ "ep01")
//
// A receiver checks the tag, one block cipher call, before deriving the
// traffic key of a run it has not authenticated yet, so a frame forging a
// new run of a sender is refused for the price of that call, and a
// sender's genuine restart is authenticated however many such frames
// arrive. A forger guesses a tag with probability 2^-32 per frame.
//
// # Envelope
//
// All integers are big-endian. The first 29 bytes travel in clear and are
// authenticated as the AEAD's associated data; Overhead() is 45.
//
//	offset  size  field
//	     0     2  magic "GC" (0x47 0x43)
//	     2     1  version, 1
//	     3     1  key id of the PSK the traffic key derives from
//	     4     1  flags, 0 (frames with other flags are rejected)
//	     5     4  sender node id, never 0
//	     9     8  epoch, per start of the sender: 32 random bits, 32-bit tag
//	    17     4  boot value of the sender (BootCounter), never 0
//	    21     8  sequence number, from 1, strictly increasing per epoch
//	    29     n  ciphertext of the n-byte plaintext frame
//	  29+n    16  GCM tag
//
// The 96-bit GCM nonce is bytes 17-28 of the envelope: boot ‖ sequence.
//
// # Freshness
//
// A receiver keeps, per sender, the newest (boot, epoch) it has
// authenticated and a 1024-frame sliding replay window over its sequence
// numbers (RFC 6479). A frame with an older boot, or with the same boot but
// another epoch, is rejected with ErrStaleEpoch; a frame whose sequence
// number was already seen or is more than 1024 behind the newest is rejected
// with ErrReplay. An authenticated frame with a newer boot replaces the
// sender's window: the engine's hello is just the first sealed frame of a
// start, so the boot counter travels in it. Frames recorded in an earlier run
// of a sender are therefore refused once the receiver has heard the sender's
// new run. A receiver that restarts forgets what it had heard; until the
// sender's current run reaches it, it cannot tell a recorded run from a live
// one (see the package limitations below).
//
// Frames that fail authentication never create state beyond a fixed-size
// cache. Deriving the traffic key of a run not authenticated yet costs
// about as much as opening a few frames. It is done at once for a run whose
// epoch tag is valid under one of the accepted keys (the tag may have been
// made under a key the sender no longer seals with, after a rotation), and
// the key is kept in a cache of 16 runs, so frames forged under a genuine
// run's id, copied from the wire, cost one derivation in all. A run with an
// untagged epoch spends a budget of the sender it claims
// (Config.NewEpochRate per second; senders not authenticated yet share
// one), so a flood naming one sender delays neither another sender nor the
// tagged restart of the same one. The number of senders is bounded
// (Config.MaxSenders): a flood of forged frames costs bounded CPU and no
// memory. Stats.Derived counts derivations.
//
// # Boot values
//
// BootCounter returns one more than the value stored in its file, and at
// least the current Unix time in seconds. The file keeps boots growing when
// the clock does not (several starts within a second, a clock set back);
// the clock keeps them growing when the file does not (a virtual machine
// restored from a snapshot, a replaced disk, a deleted file), so peers hear
// such a node again without restarting. Only losing both, a rolled-back
// file and a clock set back below the last boot, leaves the node refused
// until one of them passes its last boot (see docs/sync-epochs.md).
//
// # Limitations
//
// The envelope is not hidden: sender, boot, epoch, sequence and frame sizes
// are visible on the link, so the sync link should still be dedicated
// (bulk transfers leak table size and timing).
//
// Freshness is only as long as the receiver's memory. A receiver that
// restarts has no replay state: until it has heard each sender's current
// run it accepts the first run it authenticates, so an attacker holding a
// recording can replay frames of a sender's previous run (until the live
// run's newer boot arrives) or earlier frames of its current run (once
// each). Closing that gap needs a round trip, which the engine makes: it
// applies nothing of a peer's new epoch but its Hellos and requests until
// the peer has echoed the node's own random epoch in a Hello, which no
// recording can hold (package pfsync, Stats.Unconfirmed).
package seal

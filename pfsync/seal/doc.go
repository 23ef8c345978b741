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
// new one, then remove the old key.
//
// # Traffic keys and nonces
//
// Frames are never sealed under the PSK itself. Each sender seals under a
// traffic key
//
//	PRK = HKDF-Extract(SHA-256, salt = "gocarp pfsync seal v1", PSK)
//	key = HKDF-Expand(SHA-256, PRK, "gocarp traffic" ‖ key id ‖ sender ‖ boot ‖ epoch, 32)
//
// where epoch is 64 random bits drawn when the Sealer is created and boot is
// the persisted boot counter (BootCounter). The nonce is the 64-bit sequence
// number, strictly increasing per Sealer, left-padded to 96 bits with the
// boot counter. Because the key changes with every start, a nonce never
// repeats under one key, even across restarts, crashes that lose the
// sequence, or two nodes misconfigured with the same node id.
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
//	     9     8  epoch, random per start of the sender
//	    17     4  boot counter of the sender, never 0
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
// Frames that fail authentication never create state. Deriving the traffic
// key of an epoch not heard yet costs about as much as opening a few frames,
// so such derivations are limited (Config.NewEpochRate per second) and the
// number of senders is bounded (Config.MaxSenders): a flood of frames with
// forged epochs costs bounded CPU and no memory.
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

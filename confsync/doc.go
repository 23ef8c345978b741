// Package confsync replicates configuration documents from a publishing
// node to its subscribers over the sealed sync link: the firewall ruleset,
// DHCP or DNS configuration, anything the host can name and install as one
// blob of bytes. It is what pfSense's XML-RPC configuration sync does, with
// the state sync's key and freshness rules instead of an admin password,
// and with the subscriber telling the publisher what it applied.
//
// # Embedding
//
// Each node builds one Node with New and starts it with Start:
//
//   - a publisher lists in Config.Publish the names it may publish, and
//     calls Publish(name, version, data) whenever a document changes
//     (versions grow; after a restart it publishes its current version
//     again);
//   - a subscriber maps in Config.Subscribe each name to the node that
//     publishes it and supplies Config.Apply, which installs a version
//     atomically: on error the previous version stays in force. A name is
//     never both published and subscribed on one node.
//
// Status reports per document what is in force, what the publisher offers,
// the last error, and, on the publisher, what every subscriber reported.
// Stats counts what was rejected. Config.Demoter, if set, is held demoted
// (source DemoteSource) while a subscribed document failed to apply or is
// older than the one offered, so that CARP does not fail over onto a stale
// configuration.
//
// The transport is a pfsync.Transport (pfsync/udp on a port of its own
// beside the state sync, or pfsync/pfsynctest in tests); the Node owns it
// and closes it in Close. Every message is sealed by Config.Sealer: build
// it with pfsync/seal from the cluster's key file through Key, and with the
// node's boot value (seal.BootCounter, read once per start and shared with
// the state sync's sealer). Key separates the two protocols: a frame of
// one replayed onto the other's port fails authentication.
//
// # Protocol
//
// Messages are sealed datagrams (docs/config-replication.md gives the bytes);
// inside, "CS", version 1, a kind:
//
//   - OFFER (publisher, every Config.Interval, at once on Publish, and to a
//     subscriber reporting an older version): name, version, size and
//     SHA-256 of each published document.
//   - HAVE (subscriber, every Interval, at start and after every apply):
//     per subscribed document, the version in force, the newest that
//     failed, and why. This is what the publisher's status shows, and what
//     makes it offer a newer version at once to a subscriber that comes
//     back.
//   - REQUEST (subscriber): a document version, a chunk size, up to 128
//     ranges of chunk indexes, and the subscriber's session: 64 random bits
//     drawn at every start.
//   - DATA (publisher): one chunk, with the document's name, version, size
//     and digest and the session of the request it answers.
//
// The transfer is pulled by the subscriber: it asks for a window of chunks
// (Config.WindowBytes), asks for more when half of them arrived, and asks
// again for whatever is missing after Config.Retransmit without progress
// (doubling up to Interval while nothing comes). Publishers only send data
// when asked, so a publisher that restarts resends nothing a subscriber
// already has, and a document changed ten times while a subscriber was
// away is fetched once, at the version offered when it returns. A newer
// offer during a transfer abandons it for the newer version.
//
// Documents are chunked into datagrams rather than sent on a TCP stream so
// that the one sealed Transport seam, its in-memory fake with loss and
// partitions, and the sync link's single UDP socket serve both protocols;
// with the sync link's usual MTU of 1500 that is about 1400 bytes a chunk,
// and on a link with a larger MTU (or loopback) the chunks grow with it.
//
// # Freshness
//
// The seal refuses forged, tampered and replayed datagrams (Stats.Tampered,
// Stats.Replayed). A subscriber never applies a version older than or equal
// to the one in force, which it persists in Config.StateFile (JSON,
// replaced atomically) and announces after a restart. A subscriber that
// restarted has an empty replay window; a recording of an earlier transfer
// replayed to it is still never applied, because data must carry the
// session of this run's requests, which no recording holds. The document's
// SHA-256 is checked before Apply is called.
//
// # Limits
//
// Apply runs on a goroutine of its own, one call at a time, so a slow
// Apply delays neither offers nor transfers; a version that completes
// while another is being applied waits, and is replaced by a newer one
// that completes meanwhile. Close waits for an Apply in progress. A
// subscriber keeps in memory the document being received and the one
// waiting to be applied (Config.MaxSize bounds each); a publisher keeps
// the current version of each document it publishes. Peers must use the
// same MTU. Until its publisher's first offer reaches it, a subscriber
// cannot know it is behind, and does not demote.
package confsync

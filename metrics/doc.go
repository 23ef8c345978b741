// Package metrics turns the statistics of gocarp's components into
// Prometheus collectors (github.com/prometheus/client_golang), for
// embedders that serve /metrics. It is the only package of the module that
// imports client_golang: carp, vip and pfsync do not, so an embedder who
// does not want Prometheus does not get it.
//
// One constructor per component: [NewGroup] (a carp.Group), [NewFollower]
// (a vip.Follower), [NewEngine] (a pfsync.Engine), [NewSealer] (a
// seal.Sealer) and [NewConntrack] (the conntrack backend). Register what
// the program runs:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.NewGroup(lan), metrics.NewGroup(wan), metrics.NewEngine(engine))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// A collector keeps no copy of the statistics and starts no goroutine: it
// reads the component's Stats (and State, Demotion, Transitions) once per
// scrape, under the component's own short locks, so a scrape never waits
// for the protocol loop and the protocol loop never waits for a scrape.
// The one exception is the takeover commit, which the engine does not time
// itself: [EngineCollector.PrepareTakeover] wraps Engine.PrepareTakeover
// and records its duration.
//
// # Metrics
//
// Names follow the Prometheus conventions: prefix gocarp_, then the
// component; counters end in _total; durations are in seconds. Labels:
// vhid (the group), state (init, backup or master), family (ipv4, ipv6),
// peer (a sync peer's NodeID in decimal), reason (why a packet was dropped
// or a state entered).
//
// Per carp.Group, labelled vhid (from carp.Stats, named after BSD's
// carpstats so that netstat -s -p carp output can be compared):
//
//	gocarp_carp_state{state}                  1 for the current state, 0 for the other two
//	gocarp_carp_demotion                      demotion advertised (sum of sources, capped at 255)
//	gocarp_carp_advert_interval_seconds       interval between adverts while master
//	gocarp_carp_master_down_interval_seconds  silence after which a backup takes over
//	gocarp_carp_packets_received_total{family}  packets on IP protocol 112, valid or not
//	gocarp_carp_adverts_sent_total{family}    adverts sent
//	gocarp_carp_send_errors_total             adverts the transport failed to send
//	gocarp_carp_rejected_total{reason}        packets dropped; reason is the carpstats name:
//	                                          badif (other interface), badttl (TTL not 255),
//	                                          hdrops (too short), badsum, badver, badlen,
//	                                          badauth (HMAC mismatch), badvhid (other group),
//	                                          badloop (own advert back), replay (stale counter)
//	gocarp_carp_vrrp_packets_total            VRRP packets on protocol 112, ignored (a CARP group)
//	gocarp_carp_vrrpv2_packets_total          VRRPv2 adverts a VRRPv3 group received, not obeyed
//	gocarp_carp_carp_packets_total            CARP adverts a VRRPv3 group received, ignored
//	gocarp_carp_preemptions_total             changes to master
//	gocarp_carp_suppressed_answers_total      answers to worse adverts not sent (one had just gone out)
//	gocarp_carp_contested_total               worse masters heard and answered as master (OnContested)
//	gocarp_carp_late_timers_total             master-down timers seen late (process stopped): second look
//	gocarp_carp_unread_timers_total           master-down timers with packets unread: second look
//	gocarp_carp_transitions_total{state,reason}  state changes by state entered and carp.Reason text
//
// Per vip.Follower, labelled vhid:
//
//	gocarp_vip_state{state}                   1 for the state last applied
//	gocarp_vip_installs_total                 addresses added on promotion
//	gocarp_vip_withdrawals_total              addresses removed
//	gocarp_vip_repairs_total                  addresses re-added while master (removed behind its back)
//	gocarp_vip_announcement_rounds_total      rounds of gratuitous ARP / unsolicited NA
//	gocarp_vip_reconciles_total               reconciliation passes
//	gocarp_vip_errors_total                   background errors (see vip.Follower.Err)
//
// Per pfsync.Engine (from pfsync.Stats; per peer from pfsync.PeerStats,
// labelled peer). Gauges, the current values:
//
//	gocarp_pfsync_pending_records             send queue depth: records waiting for the next frame
//	gocarp_pfsync_resend_queue                resend queue depth: references waiting for acks
//	gocarp_pfsync_peers_up                    peers heard within DeadAfter heartbeats
//	gocarp_pfsync_records                     live records held
//	gocarp_pfsync_local_records               of which created by this node
//	gocarp_pfsync_external_records            remote records not yet committed (CommitOnTakeover)
//	gocarp_pfsync_tombstones                  remembered deletes
//	gocarp_pfsync_bulk_expected_records       records announced by the running bulk syncs
//	gocarp_pfsync_bulk_received_records       records received so far in them
//	gocarp_pfsync_in_sync                     1 once in sync (bulk from every peer up, or founder)
//	gocarp_pfsync_degraded                    1 if in sync but a required peer's bulk failed every retry
//	gocarp_pfsync_demotion                    CARP demotion the engine asks for
//	gocarp_pfsync_peer_up{peer}               1 if the peer was heard within DeadAfter heartbeats
//	gocarp_pfsync_peer_confirmed{peer}        1 if the peer echoed this node's epoch (live, not replayed)
//	gocarp_pfsync_peer_last_heard_timestamp_seconds{peer}  Unix time the peer was last heard (its lag: time() minus this)
//	gocarp_pfsync_peer_acked_sequence{peer}   highest sequence number of ours the peer acknowledged
//	gocarp_pfsync_peer_received_sequence{peer}  highest in-order sequence number received from it
//
// Counters:
//
//	gocarp_pfsync_frames_received_total, gocarp_pfsync_frames_sent_total
//	gocarp_pfsync_received_bytes_total, gocarp_pfsync_sent_bytes_total
//	gocarp_pfsync_send_errors_total           transport send failures
//	gocarp_pfsync_rejected_frames_total{reason}  bad_version, bad_length, bad_value, not_for_us,
//	                                          unconfirmed (sender has not echoed our epoch),
//	                                          peers_refused (too many peers)
//	gocarp_pfsync_auth_failures_total{reason} bad_auth, replay, stale_epoch, unknown_key, truncated
//	gocarp_pfsync_unknown_sections_total      sections of an unknown kind, skipped
//	gocarp_pfsync_stale_records_total         received copies older than ours
//	gocarp_pfsync_suppressed_records_total    received copies a remembered delete suppressed
//	gocarp_pfsync_table_errors_total          Table calls that failed
//	gocarp_pfsync_expired_records_total       remote records whose lifetime ran out before commit
//	gocarp_pfsync_retransmits_total           records sent again after a peer reported a lost frame
//	gocarp_pfsync_nacks_sent_total, gocarp_pfsync_nacks_received_total  lost-frame reports
//	gocarp_pfsync_requests_sent_total, gocarp_pfsync_requests_answered_total,
//	gocarp_pfsync_requests_ignored_total      records asked for by id
//	gocarp_pfsync_queue_drops_total           local changes dropped: send queue full
//	gocarp_pfsync_resend_drops_total          references dropped: resend queue full
//	gocarp_pfsync_peer_flushes_total          local changes sent at once (a peer had just changed them)
//	gocarp_pfsync_gaps_given_up_total         sequence gaps given up for good, then resynchronised
//	gocarp_pfsync_bulk_started_total, gocarp_pfsync_bulk_completed_total,
//	gocarp_pfsync_bulk_failed_total, gocarp_pfsync_bulk_gave_up_total  bulk syncs as receiver
//	gocarp_pfsync_bulk_sent_total, gocarp_pfsync_bulk_records_sent_total  bulk syncs as sender
//	gocarp_pfsync_bulk_ranges_failed_total, gocarp_pfsync_bulk_buckets_retried_total
//	gocarp_pfsync_digests_sent_total, gocarp_pfsync_digest_mismatches_total,
//	gocarp_pfsync_digests_refused_total       anti-entropy
//	gocarp_pfsync_resyncs_total, gocarp_pfsync_resync_buckets_total,
//	gocarp_pfsync_resync_timeouts_total       resynchronisation by digest after losses
//	gocarp_pfsync_peer_frames_received_total{peer}, gocarp_pfsync_peer_frames_sent_total{peer}
//	gocarp_pfsync_peer_received_bytes_total{peer}, gocarp_pfsync_peer_sent_bytes_total{peer}
//	gocarp_pfsync_peer_restarts_total{peer}   the peer's epoch changes (restarts)
//	gocarp_pfsync_peer_retransmits_total{peer}  records sent to the peer again after its nack
//	gocarp_pfsync_peer_nacks_sent_total{peer}, gocarp_pfsync_peer_nacks_received_total{peer}
//	gocarp_pfsync_peer_gaps_total{peer}       sequence gaps that opened in the peer's stream
//	gocarp_pfsync_peer_gaps_given_up_total{peer}  of which given up for good, then resynchronised
//	gocarp_pfsync_peer_bulk_expected_records{peer}, gocarp_pfsync_peer_bulk_received_records{peer}
//	                                          the running bulk sync from the peer: records announced, received
//	gocarp_pfsync_peer_bulk_ranges{peer}, gocarp_pfsync_peer_bulk_ranges_done{peer}
//	                                          its ranges (digest buckets) to settle, settled (0 when none runs)
//
// Takeover commits made through EngineCollector.PrepareTakeover:
//
//	gocarp_pfsync_takeover_commit_duration_seconds  histogram, 1 ms to 8 s
//	gocarp_pfsync_takeover_committed_records_total  records committed
//	gocarp_pfsync_takeover_errors_total       calls that returned an error
//
// Per seal.Sealer:
//
//	gocarp_seal_frames_sealed_total, gocarp_seal_frames_opened_total
//	gocarp_seal_rejected_frames_total{reason} bad_auth, replay, stale_epoch, unknown_key, truncated
//	gocarp_seal_throttled_total               part of bad_auth: new-epoch derivations over the rate
//	gocarp_seal_keys_derived_total            traffic keys derived for runs not yet authenticated
//
// Per conntrack backend (conntrack.Stats):
//
//	gocarp_conntrack_tracked_flows            gauge: flows known, local and injected
//	gocarp_conntrack_events_total             kernel events received
//	gocarp_conntrack_filtered_total           events and flows the filter excluded
//	gocarp_conntrack_echoes_total             events that only echoed an injection
//	gocarp_conntrack_upserts_total, gocarp_conntrack_deletes_total  changes reported to the engine
//	gocarp_conntrack_resyncs_total            full-table resyncs
//	gocarp_conntrack_overruns_total           event socket overruns (lost events)
//	gocarp_conntrack_errors_total             other receive, dump, conversion and sink errors
//	gocarp_conntrack_kernel_drops_total       new flows the kernel dropped or evicted for want of room
//	gocarp_conntrack_injected_total           remote records created in the kernel
//	gocarp_conntrack_inject_updates_total     remote records that updated a kernel entry
//	gocarp_conntrack_recreated_total          updates done as delete and create
//	gocarp_conntrack_inject_errors_total      remote records not written
//	gocarp_conntrack_table_full_total         of which refused for a full table
//	gocarp_conntrack_refused_total            remote records the filter ignores
//	gocarp_conntrack_capped_total             lifetimes cut to the kernel's timeout
//	gocarp_conntrack_unchanged_total          remote records the kernel already held as they were
//	gocarp_conntrack_conflicts_total          remote records colliding with a local flow
//	gocarp_conntrack_liberalized_total        TCP flows set to liberal window tracking
//	gocarp_conntrack_parked_total             related records that waited for their master
//
// The Grafana dashboard in dashboard/gocarp-pair.json draws these for a
// pair of nodes; docs/metrics.md says what each panel answers.
package metrics

package conntrack

// Conntrack status bits (enum ip_conntrack_status,
// linux/netfilter/nf_conntrack_common.h), as carried in record.Record.Flags.
const (
	statusExpected     uint32 = 1 << 0
	statusSeenReply    uint32 = 1 << 1
	statusAssured      uint32 = 1 << 2
	statusConfirmed    uint32 = 1 << 3
	statusFixedTimeout uint32 = 1 << 10
	statusOffload      uint32 = 1 << 14
	statusHWOffload    uint32 = 1 << 15
)

// injectStatusMask are the status bits a replicated flow keeps. Everything
// else is either unchangeable through ctnetlink (NAT and NAT_DONE bits, which
// CTA_NAT_SRC/CTA_NAT_DST set up, SEQ_ADJUST, DYING, TEMPLATE, UNTRACKED),
// or must not be copied: EXPECTED (the kernel sets it itself when it links a
// RELATED flow to its master) and OFFLOAD/HW_OFFLOAD, which belong to the
// flowtable of the node that offloaded the flow and make injection fail
// (conntrack-tools 1.5.0 masks them too).
const injectStatusMask = statusSeenReply | statusAssured | statusFixedTimeout

// InjectStatus returns the status bits to write into the kernel for a
// replicated flow whose creator reported status (IPS_* bits, the record's
// Flags): SEEN_REPLY, ASSURED and FIXED_TIMEOUT are kept and CONFIRMED is
// always set, because the kernel refuses (EBUSY) to create a flow with
// SEEN_REPLY or ASSURED that is not confirmed and treats a change of
// CONFIRMED on update as a change of an unchangeable bit. EXPECTED, the NAT
// bits, OFFLOAD and HW_OFFLOAD are stripped.
func InjectStatus(status uint32) uint32 {
	return status&injectStatusMask | statusConfirmed
}

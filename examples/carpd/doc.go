// Command carpd runs one CARP group on Linux. It is a drop-in replacement
// for ucarp 1.5.2: it takes ucarp's flags with ucarp's meaning, calls the
// same up and down scripts with the same arguments, and interoperates with
// ucarp peers on the wire (one IPv4 address per group, ucarp's HMAC).
//
//	carpd -i eth0 -s 10.0.0.2 -v 10 -p secret -a 10.0.0.254 \
//	      -u /etc/carp/up.sh -d /etc/carp/down.sh -z -P
//
// Beyond ucarp it advertises IPv6 and several addresses, talks to unicast
// peers, lowers its priority from a health file, can install and announce
// the addresses itself instead of through scripts, and never lets a slow
// script delay adverts.
//
// # Flags
//
// Short and long forms as getopt_long parses them: "-v 10", "-v10",
// "--vhid 10", "--vhid=10", clustered switches ("-PnzD", "-Pk100"),
// unambiguous long prefixes ("--mcast"), "--" to end the flags. A bad flag
// or value, or a missing required flag, exits with status 2 and a message
// naming the flag and the allowed values:
//
//	carpd: --advskew 300 out of range 0-254
//
//	ucarp flag              ucarp meaning                       carpd
//	-i --interface IF       interface (default pcap's)          same; required
//	-s --srcip IPv4         advert source; required             optional: default the interface's first address
//	-v --vhid 1-255         required                            same
//	-p --pass STR           password, <= 19 chars               same, <= 20 bytes (the BSD key size)
//	-o --passfile FILE      first line is the password          same; exclusive with -p; re-read on SIGHUP
//	-a --addr IPv4          the one virtual address; required   repeatable, IPv4 and IPv6
//	-b --advbase SECONDS    default 1, 0 accepted (broken)      0-255; 0 is sub-second: every advskew/256 s (1-254),
//	                                                            master-down deadratio adverts (docs/sub-second.md)
//	-k --advskew 0-255      default 0                           0-254 (carp(4): 255 is the bow-out)
//	-P --preempt            take over from slower masters       same
//	-n --neutral            no downscript at start-up           same
//	-u --upscript FILE      run on MASTER                       same, off the protocol loop
//	-d --downscript FILE    run on BACKUP (and start-up)        run on leaving MASTER and at start-up
//	-r --deadratio N        master-down multiplier, default 3   1-255
//	-z --shutdown           downscript on exit unless BACKUP    same; a MASTER also sends a bow-out advert
//	-x --xparam STR         third script argument               same
//	-S --ignoreifstate      ignore carrier loss                 same (else rtnetlink link tracking)
//	-D --debug              debug output                        debug log level (every dropped packet)
//	-B --daemonize          fork into the background            refused (exit 2): run carpd under a service manager
//	                                                            (carpd@.service), which keeps it in the background
//	-f --facility NAME      syslog facility                     same: the local syslog, one message per line at its
//	                                                            level's severity; none (default): stderr
//	   --mcastip/--mcast    multicast group                     only 224.0.0.18 (else use --peer)
//	-M --nomcast            broadcast MAC for adverts           rejected: unknown flag (use --peer)
//	-h --help               usage                               same
//
//	carpd only
//	   --peer ADDR          unicast adverts to ADDR; repeatable (FreeBSD peer/peer6, keepalived unicast_peer)
//	   --demote-file FILE   demotion (0-255) read from FILE every second and on SIGHUP; absent = 0
//	   --demote-skew        while demoted, also advertise advskew 240 (FreeBSD), for ucarp peers
//	   --manage-vip         install, announce (GARP / unsolicited NA) and remove the addresses
//	   --vmac               the addresses live on macvlan carp<vhid> with MAC 00:00:5e:00:01:<vhid>;
//	                        implies --manage-vip; with vrrp3 and IPv6 addresses the MAC is
//	                        00:00:5e:00:02:<vrid> (RFC 5798) on carp<vrid>v6, and a dual-stack
//	                        vrrp3 group is refused (one carpd per family, as keepalived);
//	                        adverts leave from the macvlan, with the virtual MAC as source
//	                        (IPv6 unicast --peer adverts from the parent)
//	   --script-timeout D   kill a script still running after D, with its process group;
//	                        1ms-24h, default 10s (there is no "no limit")
//	   --interval D         sub-second CARP: 10ms-992ms, rounded to 1/256 s, sets -b 0 and -k
//	                        (100ms is -b 0 -k 26, 101.6 ms; the start-up log shows it);
//	                        ucarp and FreeBSD peers cannot follow (docs/sub-second.md)
//	   --realtime 1-99      run carpd (every thread, and the scripts it starts) under SCHED_FIFO
//	                        at that priority, ahead of ordinary processes, with GOMAXPROCS one
//	                        below the CPUs (refused on a single CPU); needs CAP_SYS_NICE
//	                        (or RLIMIT_RTPRIO), else it logs a warning and runs normally
//	                        (docs/sub-second.md); a unit's CPUSchedulingPolicy= gets the
//	                        same GOMAXPROCS
//	   --metrics ADDR:PORT  serve Prometheus /metrics (package metrics: the group, the addresses,
//	                        Go and process) and /healthz (200 while the group runs, else 503)
//	                        on ADDR:PORT only; off by default
//	   --protocol P         carp (default) or vrrp3: VRRPv3 (RFC 5798) with keepalived and
//	                        routers; -v is the VRID, no -p/-o, -b, -k, -r or --demote-skew
//	   --priority 1-254     VRRP priority, higher preferred, default 100 (vrrp3 only); the
//	                        demote file lowers it, never below 1
//	   --advert-int D       VRRP advertisement interval, 10ms-40.95s in 10ms steps, default 1s
//	                        (vrrp3 only); SIGTERM as MASTER sends priority 0 (the bow-out)
//	   --no-accept          VRRP accept mode off, keepalived's no_accept (vrrp3 only): an nftables
//	                        table gocarp_noaccept_<vrid> drops packets addressed to the addresses
//	                        (ARP and neighbour discovery still answered), from start to exit,
//	                        whoever installs them; default: accept, as keepalived without
//	                        vrrp_strict. Needs the nft binary
//	   --track-script CMD   demote while CMD (/bin/sh -c) exits non-zero; repeatable
//	                        (keepalived track_script)
//	   --track-interface IF demote while IF is down or without carrier; repeatable
//	   --track-interval D   time between checks, 10ms-24h, default 1s
//	   --track-timeout D    a check running longer fails, 1ms-24h, default the interval
//	   --track-rise N       successes in a row that clear a failed tracker, 1-1000, default 1
//	   --track-fall N       failures in a row that fail a healthy tracker, 1-1000, default 1
//	   --track-weight N     demotion of a failed tracker, 1-255; 0 (default) forces the group
//	                        out of MASTER (keepalived's FAULT)
//	   --log-format F       text (default: slog's key=value lines) or json (one object a line)
//
// # Scripts
//
// A script is called as ucarp calls it, "script <interface> <addr>
// [xparam]", with addr the first --addr, and finds in its environment
// CARPD_VHID, CARPD_FROM, CARPD_STATE, CARPD_REASON (carp(4)'s words, or
// "start-up") and CARPD_ADDRS (every --addr). The upscript runs on entering
// MASTER, the downscript on leaving it (a faster master, SIGUSR2, carrier
// loss), at start-up unless --neutral (it clears an address a crashed run
// left behind, docs/interop.md, "Stale addresses after a crash"), and on
// exit as MASTER with --shutdown.
//
// ucarp runs scripts synchronously in its protocol loop, so a slow upscript
// stops its adverts and lets the backup take over too. carpd runs them from
// the group's notification goroutine: adverts go on, and the first advert
// as MASTER leaves before the upscript starts. Scripts run one at a time in
// the order of the transitions; a downscript that falls due while the
// upscript still runs waits for it, so it always undoes a finished "up".
// Their output is logged line by line.
//
// With --manage-vip a MASTER that hears another node advertise as master
// and out-ranks it (a backup that missed its adverts and took over, a
// split brain healing) announces the addresses again at once
// (carp.Config.OnContested): the other node announced them with its own
// MAC meanwhile. The scripts do not run for it, since the state did not
// change; the status line counts it (contested=N). Without --manage-vip a
// ucarp-style upscript cannot learn of it: use --vmac, or keep the ARP
// cache timeouts of the LAN short.
//
// Each script runs in its own process group. One still running after
// --script-timeout (default 10 s) is killed with SIGKILL, together with
// everything it started (a "sleep", a pipeline); so is one running when
// carpd is told to exit. Kills are logged ("carpd: script failed") and counted
// (script_timeouts, script_kills; also script_runs and script_failures).
//
// # Signals
//
// SIGUSR1 logs the state, the demotion, the number of goroutines
// (goroutines=N: one that keeps growing is a leak) and carp(4)'s counters
// (names as in netstat -s -p carp: ipackets, badauth, vrrp, ...); they are
// logged on exit too.
// SIGUSR2 steps down from MASTER and stays out of the election for 3 s
// plus the master-down interval (ucarp sleeps 3 s and then restarts its
// state machine, which waits a master-down interval; with only 3 s a peer
// with a larger skew would never get its turn). A MASTER first sends a
// bow-out advert, so the backup takes over at once, whether or not it
// preempts (ucarp sends nothing, and its backup waits its master-down
// interval).
// SIGHUP re-reads --demote-file and --passfile at once and carpd keeps
// running: the demotion applies before the reload is logged as done
// ("carpd: reloaded"), and a new password goes through the group's key
// rollover (carp.Group.Reconfigure): for 10 s or the master-down
// interval, whichever is longer, carpd still signs with the old password
// while accepting both, then signs with the new one and still accepts the
// old for as long again. Change the password file on every node within
// that window and send each SIGHUP: the nodes never stop hearing each
// other. A password file that cannot be read keeps the password in use
// (logged). Other flags are not re-read: restart carpd to change them.
// SIGTERM, SIGINT and
// SIGQUIT end carpd: a script still running is killed with its process
// group (an upscript still queued does not run), a MASTER sends a bow-out advert (OpenBSD's advbase 255 / advskew
// 255), so a carpd backup takes over at once instead of after the
// master-down interval (ucarp sends nothing); with --shutdown the
// downscript runs (bounded by --script-timeout), and with --manage-vip the
// addresses are removed. No script outlives carpd. These signals work from
// the start: one that arrives while the start-up downscript runs kills it
// and ends carpd before the group starts. So carpd exits within a few
// seconds of the signal, or within --script-timeout with --shutdown; a
// second signal kills the --shutdown downscript at once. If the shutdown
// has not finished 5 s after --script-timeout (an address change stuck in
// the kernel, say), carpd kills any script and exits with status 1.
//
// # Demotion
//
// --demote-file feeds health into CARP demotion: a health check writes an
// integer 0-255 into the file and the group advertises it in the demote
// byte; a more demoted master loses to a less demoted backup even without
// --preempt (OpenBSD's rule; ucarp and FreeBSD ignore the byte: with
// --demote-skew a demoted carpd also advertises advskew 240, as FreeBSD
// does, so that a ucarp or FreeBSD backup with --preempt takes over; use it
// on every carpd of a group with such members). The file is
// read every second instead of watched: a few-byte read costs what a stat
// does, works however the file is replaced, and cannot miss a rewrite that
// falls within the filesystem's mtime granularity. An absent file means 0;
// a file that does not hold an integer 0-255 is logged and ignored (the last
// good value stays). Only a regular file is read, and only its first 16
// bytes: a FIFO, a device or a directory in its place, or a longer file, is
// such an error, and is never read further (a FIFO would block, a huge file
// would cost memory on every read).
//
// # Health tracking
//
// --track-script and --track-interface run keepalived-style health checks
// (package track) and feed their result into the group's demotion, beside
// --demote-file. A script is healthy when it exits 0; one still running
// after --track-timeout is killed with its process group and counts as a
// failure. An interface is healthy while it is up and has carrier (polled
// every interval; -i's own link is followed by link tracking below). The
// first result sets a tracker's state; after that --track-fall failures in
// a row fail it and --track-rise successes in a row clear it, so a
// flapping check does not move the group at every result. A failed tracker
// demotes by --track-weight; the default 0 demotes by 255, the most carp
// allows, which hands the group to any healthier peer at once whatever its
// --preempt (the node stays BACKUP and would still take over if no
// healthier peer were left: CARP has no separate FAULT state). The
// interval, timeout, rise, fall and weight apply to every tracker. On exit
// the trackers stop after the group has sent its bow-out.
//
// # Link tracking
//
// Without --ignoreifstate, carpd follows the interface over rtnetlink: when
// it loses carrier or goes administratively down the group goes to INIT
// (the downscript runs if it was MASTER) and comes back as BACKUP when the
// link returns (carp(4)); ucarp polls the flags instead.
//
// # Running under systemd
//
// carpd@.service (next to this file) runs one carpd per group, its flags in
// /etc/carpd/NAME.conf as CARPD_ARGS="...". With Type=notify, carpd sends
// READY once the group runs, a STATUS line with its state after every
// transition ("vhid 1 on eth0: MASTER"), STOPPING at a terminating signal,
// and, with WatchdogSec, a WATCHDOG ping every half period while the
// group's protocol loop makes progress (adverts sent or received). The unit
// grants CAP_NET_ADMIN and CAP_NET_RAW only, on a read-only file system.
// Started by hand (no NOTIFY_SOCKET) carpd sends nothing.
//
// # Exit status
//
// 0 after a terminating signal, 1 when the group cannot run (no such
// interface, no permission, no address to send from) or the shutdown did
// not finish in time, 2 for a bad command line.
package main

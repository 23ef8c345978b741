// Package chaos is the chaos soak of carpd and fwpair.
package chaos

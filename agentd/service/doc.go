// Package service owns GuestAgentService: the one place on a node that knows both guest agents.
//
// It consumes the libvirt side (virt.Watcher), the QEMU guest agent (a QemuAgent, implemented by
// the QGA poller) and the oVirt guest agent (oga.Listener), merges what they report into one
// guest.Info per domain with a documented precedence (merge.go), records the source of every
// data group for debugging, and feeds changes to the publisher. Requests (execute.go) are routed
// to the agent that can serve them, with explicit fallback. Callers never branch on which agent
// supplied a value or served a request.
package service

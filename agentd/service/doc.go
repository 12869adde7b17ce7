// Package service owns GuestAgentService: the one place on a node that knows both guest agents.
//
// It consumes the libvirt side (virt.Watcher), the QEMU guest agent (a QemuAgent) and the oVirt
// guest agent (an OvirtAgent), each through an interface defined here and adapted in agentd/app
// (the QGA poller, the oga.Listener), and subscribes to both agents' changes itself. It merges
// what they report into one guest.Info per domain with a documented precedence (merge.go),
// records the source of every data group for debugging, and feeds changes to the publisher.
// Requests (execute.go) are routed to the agent that can serve them, with explicit fallback.
// Callers never branch on which agent supplied a value or served a request.
package service

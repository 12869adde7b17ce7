// Package publish owns the GuestAgentStatus writer of agentd: it turns the merged, agent-neutral
// view of each libvirt domain on this node (a Desired, filled by GuestAgentService) into one
// GuestAgentStatus object per domain and keeps that object up to date with as few API writes as
// possible.
//
// The package owns:
//   - object identity: the deterministic name (ObjectName), namespace placement, the node and
//     domain-UUID labels, the Node owner reference and the spec;
//   - the status: conditions (with lastTransitionTime carried over), per-agent blocks, the unified
//     guest data with list caps, string limits and a total-size guard, and per data group the time
//     its content last changed;
//   - write discipline: server-side apply of status (field owner "agentd") only when the semantic
//     content changed, volatile numbers only on significant change, a coalescing, rate-limited work
//     queue with retries, and zero writes after a restart with unchanged data (the last applied
//     status is seeded from the API);
//   - the object's life cycle on this node: create, adopt after migration, move on a namespace
//     change, delete when the domain leaves (never an object another node has adopted);
//   - the helpers that scope agentd's cache to this node's objects, and the publisher's metrics.
//
// It knows nothing about either guest agent's wire format: callers describe agents through
// AgentState and the guest through guest.Info.
package publish

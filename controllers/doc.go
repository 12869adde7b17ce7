// Package controllers holds the cluster-side reconcilers of the guestagent operator, run by the
// leader-elected controller manager (cmd/manager):
//
//   - the GuestAgentCommand reconciler validates a command, resolves its target GuestAgentStatus in
//     the same namespace, labels the command for the target's node (where agentd picks it up),
//     re-targets it while unclaimed if the domain migrates, enforces its deadline, reports each
//     outcome once (Event and metrics) and deletes it after its TTL;
//   - the status garbage collector deletes GuestAgentStatus objects whose node is gone, on Node
//     deletion and in a periodic sweep.
//
// Setup wires both into a manager. agentd (the node side) is a separate binary; the contract
// between the two is documented in docs/commands.md.
package controllers

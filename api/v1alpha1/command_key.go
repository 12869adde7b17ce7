package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// commandKeyHashLen is the number of hex digits of the spec hash in a command key (64 bits).
const commandKeyHashLen = 16

// CommandKey returns the execution key of a command: "<namespace>/<name>/<hash>", where hash is
// the first 16 hex digits of the SHA-256 of the canonical JSON of the (defaulted) spec.
//
// The key identifies "this request" independently of the object's UID, so it is stable when a
// GitOps tool deletes and re-creates the same manifest; a changed spec or a new name gives a new
// key. The JSON of a Go struct is canonical (fixed field order, sorted map keys), and the apiserver
// defaults the spec before anyone reads it, so the controller and agentd compute the same key. At
// most 63+1+253+1+16 = 334 characters, below ExecutedCommand.Key's MaxLength of 600.
func CommandKey(cmd *GuestAgentCommand) string {
	return cmd.Namespace + "/" + cmd.Name + "/" + SpecHash(&cmd.Spec)
}

// SpecHash returns the first 16 hex digits of the SHA-256 of the JSON encoding of spec.
func SpecHash(spec *GuestAgentCommandSpec) string {
	b, err := json.Marshal(spec)
	if err != nil {
		// A struct of strings, bools, integers and pointers to them always encodes.
		panic("v1alpha1: encoding a GuestAgentCommandSpec: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:commandKeyHashLen]
}

// FindExecutedCommand returns the entry of status.executedCommands whose key is key, if any.
func FindExecutedCommand(gas *GuestAgentStatus, key string) (ExecutedCommand, bool) {
	if gas == nil {
		return ExecutedCommand{}, false
	}
	for _, e := range gas.Status.ExecutedCommands {
		if e.Key == key {
			return e, true
		}
	}
	return ExecutedCommand{}, false
}

// HasExecuted reports whether gas records a command with key key as executed.
func HasExecuted(gas *GuestAgentStatus, key string) bool {
	_, ok := FindExecutedCommand(gas, key)
	return ok
}

package oga

import (
	"errors"
	"fmt"
)

var (
	// ErrNotConnected is returned by requests when the domain's OGA channel is not connected
	// (after waiting for the first connect attempt), or the domain was removed.
	ErrNotConnected = errors.New("oga: guest agent channel not connected")

	// ErrUnsupportedByGuestVersion is matched (errors.Is) by *UnsupportedError: the command needs
	// a higher negotiated API version than the guest currently has. Nothing was sent.
	ErrUnsupportedByGuestVersion = errors.New("oga: command not supported by the guest agent's API version")

	// ErrNoCompletion is returned by LifecycleEvent with wait=true when the guest did not send a
	// completion for the request before the timeout (or the context ended). The event was sent.
	ErrNoCompletion = errors.New("oga: no completion from the guest agent")

	// ErrListenerStopped is returned by Listener.Run when it is called more than once.
	ErrListenerStopped = errors.New("oga: listener already ran")
)

// UnsupportedError reports a command refused by the API-version gate.
type UnsupportedError struct {
	Command    string
	Required   int // minimum API version for Command
	Negotiated int // the domain's current negotiated version
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("oga: command %q needs guest agent API version %d, negotiated %d",
		e.Command, e.Required, e.Negotiated)
}

// Is makes errors.Is(err, ErrUnsupportedByGuestVersion) true.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupportedByGuestVersion }

package qga

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrorClass classifies why an agent call failed.
type ErrorClass string

// Error classes.
const (
	// ErrTimeout: the agent did not answer within the call timeout (hung or overloaded agent).
	ErrTimeout ErrorClass = "Timeout"
	// ErrNotConnected: no agent on the channel (libvirt VIR_ERR_AGENT_UNRESPONSIVE, 86, "not
	// connected"), or the socket is closed.
	ErrNotConnected ErrorClass = "NotConnected"
	// ErrUnsupported: libvirt or the agent does not implement or has disabled the operation
	// (VIR_ERR_NO_SUPPORT, 3; CommandNotFound; "has been disabled").
	ErrUnsupported ErrorClass = "Unsupported"
	// ErrDomainNotRunning: the domain is paused, stopped or gone (VIR_ERR_OPERATION_INVALID, 55;
	// VIR_ERR_NO_DOMAIN).
	ErrDomainNotRunning ErrorClass = "DomainNotRunning"
	// ErrAgentError: the agent answered with an error, or with a malformed reply.
	ErrAgentError ErrorClass = "AgentError"
	// ErrLibvirtError: any other libvirt failure.
	ErrLibvirtError ErrorClass = "LibvirtError"
	// ErrFrozen: the guest's filesystems are frozen and the agent disabled the command until
	// they are thawed (qemu-ga: CommandNotFound "Command … has been disabled: the agent is in
	// frozen state"). The command is supported; it is asked again after the thaw.
	ErrFrozen ErrorClass = "Frozen"
)

// Error is a classified agent-call error. Use errors.As or ClassOf.
type Error struct {
	Class   ErrorClass
	Command string
	// Code is the libvirt error code when the error came from libvirt, else 0.
	Code int
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s: %v", e.Command, e.Class, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ClassOf returns the class of err ("" for nil, ErrLibvirtError for unclassified errors).
func ClassOf(err error) ErrorClass {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return ErrTimeout
	}
	return ErrLibvirtError
}

// AgentReplyError is an error object returned by the agent itself ({"error":{class,desc}}).
type AgentReplyError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *AgentReplyError) Error() string { return e.Class + ": " + e.Desc }

// classifyAgentReply classifies an error reply of the agent.
func classifyAgentReply(cmd string, e *AgentReplyError) *Error {
	c := ErrAgentError
	switch {
	case isFrozenText(e.Desc):
		c = ErrFrozen
	case e.Class == "CommandNotFound" || isUnsupportedText(e.Desc):
		c = ErrUnsupported
	}
	return &Error{Class: c, Command: cmd, Err: e}
}

// isFrozenText recognises qemu-ga's reason for a command disabled during a filesystem freeze.
func isFrozenText(msg string) bool {
	return strings.Contains(strings.ToLower(msg), "frozen state")
}

func isUnsupportedText(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "has not been found") || strings.Contains(m, "has been disabled") ||
		strings.Contains(m, "commandnotfound") || strings.Contains(m, "not supported") ||
		strings.Contains(m, "not currently supported")
}

// Package hostcmd runs host commands for tests and scripts (virsh, the hack/ scripts) and parses
// only their standard output.
//
// Standard error is never parsed: it is kept for error messages only. Commands also run in a
// session of their own, without a controlling terminal: virsh started from a terminal launches
// polkit's text agent (pkttyagent), which prints "Authorization not available. Check if polkit
// service is running…" on standard error when polkitd does not run, even for root. Without a
// controlling terminal virsh does not start the agent, so the warning neither reaches the
// output nor the logs.
package hostcmd

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
)

// Output runs cmd and returns its standard output. On failure the error carries the command,
// its exit status and its standard error.
func Output(cmd *exec.Cmd) (string, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Virsh runs virsh against uri and returns its standard output.
func Virsh(uri string, args ...string) (string, error) {
	return Output(exec.Command("virsh", append([]string{"-c", uri}, args...)...))
}

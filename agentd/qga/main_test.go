package qga

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when goroutines leak. libvirt's default event loop goroutine
// lives for the whole process by design.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("guestagent.io/operator/agentd/virt.runEventLoop"))
}

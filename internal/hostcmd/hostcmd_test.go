package hostcmd

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// testUUID is the UUID of the domain "test" of libvirt's test:///default driver.
const testUUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"

// underTerminal runs this test binary's test `name` under a pseudo-terminal (script(1)) with
// HOSTCMD_CHILD=1 and returns what it printed: a person running the suite in a terminal, where
// virsh starts polkit's text agent.
func underTerminal(t *testing.T, name string) string {
	t.Helper()
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatalf("script(1) (util-linux) is needed: %v", err)
	}
	if _, err := exec.LookPath("virsh"); err != nil {
		t.Fatalf("virsh (libvirt-clients, hack/install-deps.sh) is needed: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("script", "-qec", fmt.Sprintf("%s -test.run '^%s$' -test.count=1", self, name), "/dev/null")
	cmd.Env = append(os.Environ(), "HOSTCMD_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s under a terminal: %v\n%s", name, err, out)
	}
	return strings.ReplaceAll(string(out), "\r", "")
}

func TestVirshOutputUnderTerminal(t *testing.T) {
	if os.Getenv("HOSTCMD_CHILD") == "1" {
		uuid, err := Virsh("test:///default", "domuuid", "test")
		fmt.Printf("uuid=%q err=%v\n", strings.TrimSpace(uuid), err)
		_, err = Virsh("test:///default", "domuuid", "no-such-domain")
		fmt.Printf("missing: %v\n", err)
		return
	}
	g := NewWithT(t)
	out := underTerminal(t, "TestVirshOutputUnderTerminal")
	g.Expect(out).To(ContainSubstring(fmt.Sprintf("uuid=%q err=<nil>\n", testUUID)))
	g.Expect(out).To(MatchRegexp(`missing: virsh -c test:///default domuuid no-such-domain: exit status 1: error: .*no-such-domain`))
	g.Expect(out).NotTo(ContainSubstring("polkit"), "virsh started polkit's text agent")
}

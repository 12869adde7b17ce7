package clustersim

import "testing"

func TestClassify(t *testing.T) {
	for _, c := range []struct{ method, path, watch, verb, res string }{
		{"GET", "/apis/guestagent.io/v1alpha1/namespaces/ns/guestagentstatuses", "", "list", "guestagentstatuses"},
		{"GET", "/apis/guestagent.io/v1alpha1/guestagentstatuses", "true", "watch", "guestagentstatuses"},
		{"GET", "/apis/guestagent.io/v1alpha1/namespaces/ns/guestagentstatuses/vm-1", "", "get", "guestagentstatuses"},
		{"PATCH", "/apis/guestagent.io/v1alpha1/namespaces/ns/guestagentstatuses/vm-1/status", "", "patch", "guestagentstatuses/status"},
		{"PATCH", "/apis/guestagent.io/v1alpha1/namespaces/ns/guestagentstatuses/vm-1", "", "patch", "guestagentstatuses"},
		{"POST", "/apis/events.k8s.io/v1/namespaces/ns/events", "", "create", "events"},
		{"GET", "/api/v1/nodes/node-1", "", "get", "nodes"},
		{"GET", "/api/v1/namespaces/ns", "", "get", "namespaces"},
		{"DELETE", "/apis/guestagent.io/v1alpha1/namespaces/ns/guestagentstatuses/vm-1", "", "delete", "guestagentstatuses"},
		{"PUT", "/apis/guestagent.io/v1alpha1/namespaces/ns/guestagentcommands/c/status", "", "update", "guestagentcommands/status"},
		{"GET", "/apis/guestagent.io/v1alpha1", "", "get", "discovery"},
		{"GET", "/version", "", "get", "nonresource"},
	} {
		verb, res := classify(c.method, c.path, c.watch)
		if verb != c.verb || res != c.res {
			t.Errorf("%s %s watch=%q: got %s %s, want %s %s", c.method, c.path, c.watch, verb, res, c.verb, c.res)
		}
	}
}

func TestPromSum(t *testing.T) {
	text := `# HELP rest_client_requests_total Number of HTTP requests.
rest_client_requests_total{code="200",host="127.0.0.1:1",method="GET"} 10
rest_client_requests_total{code="201",host="127.0.0.1:1",method="POST"} 2
rest_client_requests_total{code="404",host="127.0.0.1:1",method="GET"} 1
other_total{method="GET"} 5
`
	got := promSum(text, "rest_client_requests_total", "method")
	if got["get"] != 11 || got["post"] != 2 || len(got) != 2 {
		t.Errorf("got %v", got)
	}
}

package app

import "sync"

// changeFeed fans a provider's per-domain change notifications out to its subscribers.
type changeFeed struct {
	mu   sync.Mutex
	subs []func(uuid string)
}

// Subscribe registers f; it is called (from the provider's goroutines) for every change.
func (c *changeFeed) Subscribe(f func(uuid string)) {
	c.mu.Lock()
	c.subs = append(c.subs, f)
	c.mu.Unlock()
}

func (c *changeFeed) notify(uuid string) {
	c.mu.Lock()
	subs := c.subs
	c.mu.Unlock()
	for _, f := range subs {
		f(uuid)
	}
}

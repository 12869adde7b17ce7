package service

import "sync"

// watchers is a registry of per-domain subscriber channels: the power watches of the power
// policies and the change watches of waits on guest data.
type watchers[T any] struct {
	mu   sync.Mutex
	next int
	subs map[string]map[int]chan T
}

// add subscribes ch to the domain uuid and returns the function that ends the subscription.
func (w *watchers[T]) add(uuid string, ch chan T) (remove func()) {
	w.mu.Lock()
	if w.subs == nil {
		w.subs = map[string]map[int]chan T{}
	}
	if w.subs[uuid] == nil {
		w.subs[uuid] = map[int]chan T{}
	}
	id := w.next
	w.next++
	w.subs[uuid][id] = ch
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		delete(w.subs[uuid], id)
		if len(w.subs[uuid]) == 0 {
			delete(w.subs, uuid)
		}
		w.mu.Unlock()
	}
}

// send offers v to every subscriber of uuid ("": of every domain) without blocking: a full
// channel does not get it.
func (w *watchers[T]) send(uuid string, v T) {
	w.mu.Lock()
	defer w.mu.Unlock()
	offer := func(m map[int]chan T) {
		for _, ch := range m {
			select {
			case ch <- v:
			default:
			}
		}
	}
	if uuid == "" {
		for _, m := range w.subs {
			offer(m)
		}
		return
	}
	offer(w.subs[uuid])
}

package server

// SetQueryTestHook makes f see how every query ends (nil: stop).
func SetQueryTestHook(f func(err error)) {
	if f == nil {
		queryTestHook.Store(nil)
		return
	}
	queryTestHook.Store(&f)
}

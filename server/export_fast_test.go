package server

// FastServed is the number of requests the fast key path served.
func FastServed() int64 { return fastServed.Load() }

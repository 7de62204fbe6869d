// clusterdriver is the load driver of scripts/clusterbench: a copy of
// ../shared/bench/serverbench/main.go (same requests, same measurement,
// one JSON line a run) that spreads its clients over several members the
// same way for every target: with -addr A,B,C client i talks to
// address i mod 3 only (kvtool: its own keep-alive HTTP connection; etcd:
// a clientv3 per endpoint, shared by the clients on that endpoint, as the
// one-endpoint driver shares one). It also waits until every address
// takes a put (-wait: a cluster elects its leader first), reports every
// successful operation including the warmup (ops_all, for CPU per
// operation measured around the whole run), and prints free loopback
// ports (-freeports N) for the script to start servers on.
//
// It is its own module (it needs etcd's client, which kvtool does not),
// so kvtool's go build, vet and test skip it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

type client interface {
	Put(key string, val []byte) error
	Get(key string) error
}

type kvtoolHTTP struct {
	hc   *http.Client
	base string
}

func (c *kvtoolHTTP) Put(k string, v []byte) error {
	req, _ := http.NewRequest(http.MethodPut, c.base+"/v1/kv/"+k, bytes.NewReader(v))
	r, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	if r.StatusCode != 200 {
		return fmt.Errorf("status %d", r.StatusCode)
	}
	return nil
}

func (c *kvtoolHTTP) Get(k string) error {
	r, err := c.hc.Get(c.base + "/v1/kv/" + k)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	return nil
}

type etcd struct{ c *clientv3.Client }

func (e *etcd) Put(k string, v []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := e.c.Put(ctx, k, string(v))
	return err
}
func (e *etcd) Get(k string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := e.c.Get(ctx, k)
	return err
}

func main() {
	target := flag.String("target", "kvtool", "kvtool | etcd")
	addr := flag.String("addr", "127.0.0.1:7070", "server addresses, comma-separated: client i uses address i mod n")
	conc := flag.Int("c", 16, "concurrent clients")
	dur := flag.Duration("d", 6*time.Second, "measured duration")
	warm := flag.Duration("warmup", time.Second, "warmup")
	wait := flag.Duration("wait", 0, "first wait up to this long until every address takes a put")
	mode := flag.String("mode", "put", "put | get")
	vsize := flag.Int("vsize", 100, "value bytes")
	rep := flag.Int("rep", 0, "repetition (recorded)")
	free := flag.Int("freeports", 0, "print N free loopback ports and exit")
	flag.Parse()
	if *free > 0 {
		freePorts(*free)
		return
	}

	addrs := strings.Split(*addr, ",")
	ecs := map[string]*clientv3.Client{}
	newClient := func(a string) client {
		switch *target {
		case "kvtool":
			tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}
			return &kvtoolHTTP{hc: &http.Client{Transport: tr}, base: "http://" + a}
		case "etcd":
			if ecs[a] == nil {
				ec, err := clientv3.New(clientv3.Config{Endpoints: []string{a}, DialTimeout: 5 * time.Second})
				if err != nil {
					panic(err)
				}
				ecs[a] = ec
			}
			return &etcd{c: ecs[a]} // one gRPC connection per endpoint, multiplexed
		}
		panic("unknown target " + *target)
	}
	val := bytes.Repeat([]byte("v"), *vsize)
	if *wait > 0 {
		waitReady(addrs, newClient, val, *wait)
	}
	clients := make([]client, *conc)
	for i := range clients {
		clients[i] = newClient(addrs[i%len(addrs)])
	}
	if *mode == "get" { // preload
		for i := 0; i < 10000; i++ {
			if err := clients[0].Put(fmt.Sprintf("k%015d", i), val); err != nil {
				panic(err)
			}
		}
	}
	var phase atomic.Int32
	var seq, errs, okAll atomic.Uint64
	lats := make([][]time.Duration, *conc)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := clients[i]
			for phase.Load() < 2 {
				n := seq.Add(1)
				t0 := time.Now()
				var err error
				if *mode == "put" {
					err = c.Put(fmt.Sprintf("k%015d", (n*2654435761)%1000000007), val)
				} else {
					err = c.Get(fmt.Sprintf("k%015d", n%10000))
				}
				d := time.Since(t0)
				if err != nil {
					errs.Add(1)
					time.Sleep(time.Millisecond)
					continue
				}
				okAll.Add(1)
				if phase.Load() == 1 {
					lats[i] = append(lats[i], d)
				}
			}
		}(i)
	}
	time.Sleep(*warm)
	phase.Store(1)
	t0 := time.Now()
	time.Sleep(*dur)
	phase.Store(2)
	el := time.Since(t0)
	wg.Wait()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(p*float64(len(all)-1))].Microseconds())
	}
	out := map[string]any{"target": *target, "mode": *mode, "c": *conc, "rep": *rep, "addrs": len(addrs),
		"ops_per_s": float64(len(all)) / el.Seconds(), "p50_us": pct(0.5), "p99_us": pct(0.99),
		"errors": errs.Load(), "ops_all": okAll.Load()}
	json.NewEncoder(os.Stdout).Encode(out)
}

// waitReady returns once one put on every address succeeded; it exits
// with status 1 if one did not within d.
func waitReady(addrs []string, newClient func(string) client, val []byte, d time.Duration) {
	deadline := time.Now().Add(d)
	for _, a := range addrs {
		c := newClient(a)
		for {
			err := c.Put("ready", val)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "clusterdriver: %s takes no put after %v: %v\n", a, d, err)
				os.Exit(1)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// freePorts prints n distinct free loopback ports, one a line (all bound
// at once, then released).
func freePorts(n int) {
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "clusterdriver:", err)
			os.Exit(1)
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
}

// status-judge judges Kubernetes objects the way Flux and Argo CD do, with
// their own code: kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status) and
// gopher-lua under Argo CD's sandbox for the health script.
//
// Usage: status-judge HEALTH.lua < objects.jsonl > verdicts.jsonl
// One JSON object per input line; one line per object out:
//
//	{"kstatus":{"status":"InProgress","message":"..."},"argocd":{"status":"Progressing","message":"..."}}
//
// The Argo CD part follows argo-cd util/lua (VM.runLua, ExecuteHealthLua) and
// gitops-engine pkg/health (GetResourceHealth): an object with a
// deletionTimestamp is "Progressing: Pending deletion" before any Lua runs;
// the Lua state opens only package, base, table and a safe os (time, date);
// an invalid status code is "Unknown".
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type judgement struct {
	Kstatus verdict `json:"kstatus"`
	Argocd  verdict `json:"argocd"`
	Error   string  `json:"error,omitempty"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: status-judge HEALTH.lua < objects.jsonl")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	for in.Scan() {
		line := in.Bytes()
		if len(line) == 0 {
			continue
		}
		var j judgement
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(line); err != nil {
			j.Error = err.Error()
		} else {
			if r, err := status.Compute(u); err != nil {
				j.Error = "kstatus: " + err.Error()
			} else {
				j.Kstatus = verdict{string(r.Status), r.Message}
			}
			h, err := argoHealth(u, string(script))
			if err != nil {
				j.Error = "argocd: " + err.Error()
			}
			j.Argocd = h
		}
		if err := enc.Encode(j); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		// Flushed per object: the caller may stream.
		if err := out.Flush(); err != nil {
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

var validHealth = map[string]bool{
	"Unknown": true, "Progressing": true, "Healthy": true, "Suspended": true, "Degraded": true, "Missing": true,
}

// argoHealth is gitops-engine's GetResourceHealth with a Lua override.
func argoHealth(u *unstructured.Unstructured, script string) (verdict, error) {
	if u.GetDeletionTimestamp() != nil {
		return verdict{"Progressing", "Pending deletion"}, nil
	}
	l, err := runLua(u, script)
	if err != nil {
		return verdict{"Unknown", err.Error()}, err
	}
	defer l.Close()
	ret := l.Get(-1)
	switch ret.Type() {
	case lua.LTNil:
		return verdict{}, nil
	case lua.LTTable:
		t := ret.(*lua.LTable)
		s := lua.LVAsString(t.RawGetString("status"))
		m := lua.LVAsString(t.RawGetString("message"))
		if !validHealth[s] {
			return verdict{"Unknown", "Lua returned an invalid health status"}, nil
		}
		return verdict{s, m}, nil
	default:
		return verdict{"Unknown", ""}, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
}

// runLua is argo-cd util/lua VM.runLua with UseOpenLibs false.
func runLua(u *unstructured.Unstructured, script string) (*lua.LState, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, pair := range []struct {
		n string
		f lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(pair.f), NRet: 0, Protect: true}, lua.LString(pair.n)); err != nil {
			l.Close()
			return nil, err
		}
	}
	l.PreloadModule(lua.OsLibName, safeOsLoader)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, u.Object))
	if err := l.DoString(script); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// openSafeOs registers an os table with only time and date, as Argo CD's safe os does.
func openSafeOs(l *lua.LState) int {
	tbl := l.RegisterModule(lua.OsLibName, safeOsFuncs)
	l.Push(tbl)
	return 1
}

func safeOsLoader(l *lua.LState) int {
	l.Push(l.SetFuncs(l.NewTable(), safeOsFuncs))
	return 1
}

var safeOsFuncs = map[string]lua.LGFunction{
	"time": func(l *lua.LState) int { l.Push(lua.LNumber(time.Now().Unix())); return 1 },
	"date": func(l *lua.LState) int { l.Push(lua.LString(time.Now().UTC().Format(time.RFC3339))); return 1 },
}

// decodeValue is argo-cd util/lua decodeValue.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case bool:
		return lua.LBool(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

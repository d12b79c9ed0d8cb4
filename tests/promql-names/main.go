// promql-names parses PromQL expressions with Prometheus's own parser
// (github.com/prometheus/prometheus/promql/parser) and prints the metric names
// each one selects.
//
// Usage: promql-names < exprs.jsonl > names.jsonl
// One JSON string (an expression) per input line; one line per expression out:
//
//	{"names":["sales_operator_reconciles_total"]}  or  {"error":"1:5: parse error: ..."}
//
// A name is a vector or matrix selector's metric name, or the value of its
// __name__ equality matcher; a selector with no name at all (only a regexp on
// __name__, say) is reported as an error, since no name could be checked.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

type result struct {
	Names []string `json:"names"`
	Error string   `json:"error,omitempty"`
}

func names(expr string) ([]string, error) {
	ast, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	var missing error
	parser.Inspect(ast, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			missing = fmt.Errorf("a selector without a metric name: %s", vs.String())
		} else {
			set[name] = true
		}
		return nil
	})
	if missing != nil {
		return nil, missing
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	enc := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var expr string
		var r result
		if err := json.Unmarshal(in.Bytes(), &expr); err != nil {
			r.Error = "input is not a JSON string: " + err.Error()
		} else if n, err := names(expr); err != nil {
			r.Error = err.Error()
		} else {
			r.Names = n
		}
		if err := enc.Encode(r); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

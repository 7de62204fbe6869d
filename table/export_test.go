package table

// Update is the -update flag, for the external tests in package table_test.
var Update = update

# Hello world, the Rack way (the tests' and the benchmark's app).
run ->(_env) { [200, { 'Content-Type' => 'text/plain' }, ['Hello, World!']] }

# The smallest Rack app: the benchmark's hello world.
run ->(env) { [200, { "Content-Type" => "text/plain" }, ["Hello, World!"]] }

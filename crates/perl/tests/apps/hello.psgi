# The smallest PSGI app: the benchmark's hello world.
my $app = sub {
    return [200, ['Content-Type' => 'text/plain'], ['Hello, World!']];
};

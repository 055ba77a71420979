# Hello world, the PSGI way (the tests' and the benchmark's app).
my $app = sub {
    return [200, ['Content-Type' => 'text/plain'], ['Hello, World!']];
};

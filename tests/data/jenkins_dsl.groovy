// A mock of the Jenkins pipeline DSL, prepended to a generated Jenkinsfile by
// jenkins_mock_run.groovy. Each step records [kind, detail, thread] in `events`. Branches of
// `parallel` run in threads that take turns as Jenkins' CPS does: one runs at a time, and
// a branch gives the turn away only in a blocking step (a command, `waitUntil`).
// Binding: unix (isUnix()), stampMatches (the stamp check's answer), delays (stage -> ms
// its doit run takes), fails (stages whose doit run fails), events, turn (the lock),
// params, env.

class Block {
    def script
    String kind
    def propertyMissing(String name) { script.getProperty(name) }
    def propertyMissing(String name, value) { script.record(kind, [name, value]) }
    def methodMissing(String name, args) {
        if (kind == 'parameter' && name == 'string') {
            script.params[args[0].name] = args[0].defaultValue
        }
        script.record(kind, [name] + (args as List))
    }
}

def record(String kind, detail) {
    events.add([kind, detail, Thread.currentThread().name])
}

def inBlock(String kind, Closure body) {
    body.delegate = new Block(script: this, kind: kind)
    body.resolveStrategy = Closure.DELEGATE_FIRST
    body()
}

def enter(String kind, detail, Closure body) {
    record(kind, detail)
    try {
        return body()
    } finally {
        record('end ' + kind, detail)
    }
}

def blocking(long millis) {
    turn.unlock()
    try {
        Thread.sleep(millis)
    } finally {
        turn.lock()
    }
}

def pipeline(Closure body) { turn.lock(); try { body() } finally { turn.unlock() } }
def agent(Object what) { record('agent', what instanceof Closure ? 'closure' : what) }
def parameters(Closure body) { inBlock('parameter', body) }
def environment(Closure body) { inBlock('environment', body) }
def options(Closure body) { inBlock('option', body) }
def stages(Closure body) { body() }
def steps(Closure body) { body() }
def script(Closure body) { body() }
def stage(String name, Closure body) { enter('stage', name, body) }
def node(String label, Closure body) { enter('node', label, body) }
def timeout(Map args, Closure body) { enter('timeout', args, body) }
def retry(int times, Closure body) { enter('retry', times, body) }
def dir(String path, Closure body) { enter('dir', path, body) }
def withCredentials(List bindings, Closure body) { enter('withCredentials', bindings, body) }
def string(Map args) { return [string: args] }
def isUnix() { return unix }
def checkout(what) { record('checkout', what) }
def echo(String text) { record('echo', text) }
def error(String text) { record('error', text); throw new RuntimeException(text) }
def junit(Map args) { record('junit', args.testResults) }
def archiveArtifacts(Map args) { record('archiveArtifacts', args.artifacts) }
def fileExists(String path) { record('fileExists', path); return true }
def readFile(Map args) { record('readFile', args.file); return 'text' }
def writeFile(Map args) { record('writeFile', args.file) }
def deleteDir() { record('deleteDir', '') }

def command(String shell, Object args) {
    String text = args instanceof Map ? args.script : args
    if (shell != (unix ? 'sh' : 'bat')) {
        throw new IllegalStateException("${shell} on an agent where isUnix() is ${unix}")
    }
    record(shell, text)
    // `doit run a b c`: the stages in order, each taking its delay; the first that fails
    // stops the rest and the step fails with doit's exit code 1
    def run = text =~ /doit(?:\.exe)? run((?: ["'][a-z0-9_-]+["'])+)$/
    if (run.find()) {
        for (String name : (run.group(1) =~ /[a-z0-9_-]+/).collect { it }) {
            record('doit stage', name)
            blocking(delays[name] ?: 1)
            if (fails.contains(name)) {
                record('doit failed', name)
                record('end ' + shell, text)
                throw new RuntimeException("script returned exit code 1")
            }
        }
    }
    record('end ' + shell, text)
    if (args instanceof Map && args.returnStatus) {
        return stampMatches ? 0 : 1
    }
}
def sh(args) { command('sh', args) }
def bat(args) { command('bat', args) }

def waitUntil(Closure condition) { waitUntil([:], condition) }
def waitUntil(Map args, Closure condition) {
    record('waitUntil', args)
    long deadline = System.currentTimeMillis() + 20000
    while (!condition()) {
        if (System.currentTimeMillis() > deadline) {
            throw new IllegalStateException('waitUntil never came true')
        }
        blocking(2)
    }
}

def parallel(Map branches) {
    record('parallel', branches.keySet() as List)
    def failures = Collections.synchronizedList([])
    def threads = branches.collect { name, body ->
        Thread.start(name) {
            turn.lock()
            try {
                body()
            } catch (Throwable failure) {
                failures.add(failure)
            } finally {
                turn.unlock()
            }
        }
    }
    turn.unlock()
    try {
        threads*.join()
    } finally {
        turn.lock()
    }
    if (failures) {
        throw failures[0]
    }
}


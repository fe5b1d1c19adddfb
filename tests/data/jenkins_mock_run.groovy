// Runs generated Jenkinsfiles against the DSL mock jenkins_dsl.groovy, in one JVM.
// Argument: a JSON file [{"name": ..., "path": ..., "delays": {stage: ms},
// "fails": [stage, ...]}, ...]. Prints
// JSON {name: {"unix=true stamp=false": {"events": [...], "failure": null}, ...}}.
import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import java.util.concurrent.locks.ReentrantLock

// Maps, lists, numbers and booleans as they are; anything else (GStrings) as text.
def plain(value) {
    if (value instanceof Map) {
        return value.collectEntries { k, v -> [(k.toString()): plain(v)] }
    }
    if (value instanceof List) {
        return value.collect { plain(it) }
    }
    if (value == null || value instanceof Number || value instanceof Boolean) {
        return value
    }
    return value.toString()
}

def here = new File(getClass().protectionDomain.codeSource.location.path).parentFile
def dsl = new File(here, 'jenkins_dsl.groovy').getText('UTF-8')
def results = [:]
for (job in new JsonSlurper().parse(new File(args[0]))) {
    def text = new File(job.path).getText('UTF-8')
    def runs = [:]
    for (unix in [true, false]) {
        for (stampMatches in [false, true]) {
            def events = Collections.synchronizedList([])
            def binding = new Binding(unix: unix, stampMatches: stampMatches, events: events,
                                      delays: job.delays ?: [:], fails: job.fails ?: [], turn: new ReentrantLock(),
                                      params: [:], env: [BUILD_TAG: 'jenkins-mock-1'],
                                      none: 'none', scm: 'scm')
            String failure = null
            try {
                new GroovyShell(binding).evaluate(dsl + '\n' + text, 'Jenkinsfile.groovy')
            } catch (Throwable problem) {
                failure = problem.toString()
            }
            runs["unix=${unix} stamp=${stampMatches}".toString()] = [events: plain(events), failure: failure]
        }
    }
    results[job.name] = runs
}
println JsonOutput.toJson(results)

// DynamoDB Local listening on one address. Its command line has no host option (`-help` lists -port, -inMemory,
// -dbPath, -sharedDb, -cors, -delayTransientStatuses, -optimizeDbBeforeStartup, -disableTelemetry), and the
// Jetty server it builds listens on every interface. This runs its own ServerRunner with the same options, sets
// the host on that server's connector before it starts, and starts it as ServerRunner.main does.
//
// Run in source-file mode (JEP 330; needs a JDK 17+):
//   java -cp "DynamoDBLocal.jar:DynamoDBLocal_lib/*" local/DynamoDBLocalOnHost.java <host> <DynamoDB Local options>

import java.lang.reflect.Field;
import java.util.Arrays;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public class DynamoDBLocalOnHost {
    public static void main(String[] args) throws Exception {
        String host = args[0];
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(Arrays.copyOfRange(args, 1, args.length));
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Connector[] connectors = ((Server) field.get(proxy)).getConnectors();
        if (connectors.length == 0) {
            throw new IllegalStateException("DynamoDB Local built a server without a connector");
        }
        for (Connector connector : connectors) {
            ((ServerConnector) connector).setHost(host);
        }
        proxy.start();
    }
}
